"""Software facts of published runs that the case format has no field for (``validate/data/software.yaml``).

Entry points: ``software_facts()`` (url → ``SoftwareFacts``), ``SoftwareFacts.job_fields()`` (the
``TrainingJob`` fields they set) and ``SoftwareFacts.plan_knobs()`` (the plan knobs they fix). A fact is
what the source's software of that date did, with its reason; never a tuned constant.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetwise.catalog.loader import data_layers, format_validation_error, load_data_file
from fleetwise.errors import SpecError

DATA_FILE = Path(__file__).parent / "data" / "software.yaml"


class SoftwareFacts(BaseModel):
    """What one source's training stack did; ``None`` = not known (the tool chooses, and says so)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    why: str = Field(min_length=1)
    attention_kernel: Literal["flash", "unfused"] = "flash"
    host_s_per_kernel: float | None = Field(default=None, ge=0.0, le=1e-3,
                                            description="host time to issue one kernel (eager: tens of us)")
    dp_overlap: bool | None = Field(default=None, description="gradient reduction overlapped with backward")
    grad_dtype: Literal["fp32", "bf16", "fp16"] | None = None
    tp_overlap_scope: Literal["layer", "per_gemm"] | None = None
    moe_token_dispatcher: Literal["alltoall", "allgather"] | None = None
    tp_comm_overlap: bool | None = None
    ep_comm_overlap: bool | None = None
    rank_order: Literal["tp-cp-dp-pp", "tp-cp-pp-dp"] | None = None
    pipeline_lockstep: bool | None = Field(default=None, description="DeepSpeed PipelineEngine lock-step schedule")
    sequence_parallel: bool | None = Field(default=None, description="False: the software of the run's date had no "
                                           "sequence parallelism (fills the plan field when a case leaves it out)")
    # how the source computed the MFU it published, when not model FLOPs over the catalog peak: FLOPs it
    # counts per token (e.g. 6 x a nominal parameter count, no attention term) and the peak it divides by
    mfu_flops_per_token: float | None = Field(default=None, gt=0.0)
    mfu_peak_tflops: float | None = Field(default=None, gt=0.0)

    def source_mfu(self, tokens_per_s_per_chip: float) -> float | None:
        """The MFU the source's own formula gives for this throughput (None: the source used ours)."""
        if self.mfu_flops_per_token is None or self.mfu_peak_tflops is None:
            return None
        return tokens_per_s_per_chip * self.mfu_flops_per_token / (self.mfu_peak_tflops * 1e12)

    def job_fields(self) -> dict[str, Any]:
        """``TrainingJob`` fields these facts set."""
        out: dict[str, Any] = {"attention_kernel": self.attention_kernel}
        for k in ("host_s_per_kernel", "dp_overlap", "grad_dtype", "tp_overlap_scope",
                  "moe_token_dispatcher", "pipeline_lockstep"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    def plan_defaults(self) -> dict[str, Any]:
        """Published plan fields (``TrainingPlan`` names) these facts fill where a case leaves them out."""
        return {} if self.sequence_parallel is None else {"sequence_parallel": self.sequence_parallel}

    def plan_knobs(self) -> dict[str, Any]:
        """Plan knobs a case never publishes that these facts fix (``TrainingPlan`` field names)."""
        return {k: getattr(self, k) for k in ("tp_comm_overlap", "ep_comm_overlap", "rank_order")
                if getattr(self, k) is not None}


NO_FACTS = SoftwareFacts(why="no software facts recorded for this source")


def software_facts(path: Path = DATA_FILE) -> dict[str, SoftwareFacts]:
    """Per-source facts keyed by a case's url (user catalog folders' ``software.yaml`` layered over it)."""
    return _software_facts(path, tuple(data_layers()))


@lru_cache(maxsize=4)
def _software_facts(path: Path, layers: tuple[Path, ...]) -> dict[str, SoftwareFacts]:
    data = load_data_file(path)
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, dict):
        raise SpecError(f"{path}: expected a 'sources' mapping of url -> facts")
    out = {}
    for url, raw in sources.items():
        try:
            out[str(url)] = SoftwareFacts.model_validate(raw)
        except ValidationError as exc:
            raise SpecError(format_validation_error(f"{path}: sources.{url}", exc)) from None
    return out
