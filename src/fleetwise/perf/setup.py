"""Resolve ids and overrides into a ``TrainingSetup``: the model, chip, system, network and constants.

Entry point: ``make_training_setup``. A missing system is synthesised from the accelerator's own
scale-up and scale-out figures (8-chip nodes), and says so in its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetwise.catalog.types import PRECISIONS, Accelerator, ModelArch, Precision, SiteLink, System, Tier
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.network.collectives import Network, build_network
from fleetwise.perf.calibration import Calibration, GroupConstants, load_calibration
from fleetwise.perf.efficiency import ChipEfficiency, EfficiencyTable, load_efficiency
from fleetwise.perf.model_math import ParamCounts, param_counts
from fleetwise.plan import TrainingJob


@dataclass(frozen=True, slots=True)
class TrainingSetup:
    """Everything a training cost evaluation needs besides the plan columns."""

    model: ModelArch
    accel: Accelerator
    system: System
    network: Network
    eff: ChipEfficiency
    job: TrainingJob
    constants: GroupConstants
    params: ParamCounts
    sites: int = 1  # data-parallel replicas spread evenly over this many data-centre sites
    site_link: SiteLink | None = None  # the link between sites (required when sites > 1)


def synthetic_system(accel: Accelerator) -> System:
    """A node built from the accelerator's datasheet figures, inside the accelerator's own scale-up domain.

    Nodes hold at most 8 chips; the scale-up domain is the datasheet's (a TPU slice spans 256 or more chips
    over ICI, so its collectives stay off the data-centre network), 8 when it is not published.
    """
    domain = accel.scaleup_domain or 8
    per_node = min(domain, 8)
    bw = accel.scaleup_gbps_bidir or 64.0
    topology = "torus" if accel.id.startswith("google_tpu") else "switched"
    return System(
        id=f"{accel.id}__node",
        vendor=accel.vendor,
        name=f"{per_node}x {accel.name} per node, {domain}-chip scale-up domain (synthesised from the "
        f"accelerator's figures)",
        accelerator_id=accel.id,
        chips_per_node=per_node,
        domain_size=domain if domain % per_node == 0 else per_node,
        scaleup=Tier(topology=topology, gbps_bidir_per_chip=bw),
        scaleout_gbit_per_node=(accel.scaleout_gbit_per_chip or 100.0) * per_node,
    )


def adapt_system(system: System, accel: Accelerator) -> System:
    """A system built for another chip of the same node type runs at this chip's scale-up bandwidth."""
    if system.accelerator_id == accel.id or accel.scaleup_gbps_bidir is None:
        return system
    return system.model_copy(update={
        "scaleup": system.scaleup.model_copy(update={"gbps_bidir_per_chip": accel.scaleup_gbps_bidir}),
        "accelerator_id": accel.id,
    })


# Formats a framework substitutes for one another without changing the numerics class: "16-bit mixed
# precision" runs as whichever of bf16/fp16 the chip has, and tf32 GEMMs are fp32 GEMMs on a chip without
# TF32 units. An 8-bit or 4-bit format the chip lacks has no such stand-in: it would silently run at 16 bits.
_STAND_INS: dict[str, tuple[str, ...]] = {"bf16": ("fp16",), "fp16": ("bf16",), "tf32": ("fp32",)}


def check_precision(accel: Accelerator, precision: Precision, field: str = "--precision") -> None:
    """Raise ``InfeasibleError`` when ``accel`` has no rate for ``precision`` (nor an equivalent stand-in).

    Args:
        accel: the chip.
        precision: the training compute format asked for.
        field: the flag or field to name in the message.
    """
    if accel.supports(precision) or any(accel.supports(p) for p in _STAND_INS.get(precision, ())):  # type: ignore[arg-type]
        return
    runs = [p for p in PRECISIONS if p != "int8" and accel.supports(p)]
    raise InfeasibleError(f"{field} {precision}: {accel.id} has no {precision} compute in its datasheet; "
                          f"allowed on this chip: {', '.join(runs) or 'none published'}")


def make_training_setup(
    model: ModelArch,
    accel: Accelerator,
    system: System | None,
    job: TrainingJob,
    eff: EfficiencyTable | None = None,
    calibration: Calibration | None = None,
    sites: int = 1,
    site_link: SiteLink | None = None,
) -> TrainingSetup:
    """Bundle everything the training cost model needs (``sites`` > 1 spreads data parallelism over sites)."""
    if sites > 1 and site_link is None:
        raise SpecError(f"--sites {sites} needs the link between the sites (--site-link-gbit)")
    check_precision(accel, job.precision)
    eff = eff or load_efficiency()
    calibration = calibration or load_calibration()
    sys_ = adapt_system(system, accel) if system is not None else synthetic_system(accel)
    return TrainingSetup(
        model=model,
        accel=accel,
        system=sys_,
        network=build_network(sys_, accel, eff),
        eff=eff.chip(accel.id),
        job=job,
        constants=calibration.constants(accel.id),
        params=param_counts(model),
        sites=sites,
        site_link=site_link,
    )
