"""The run-summary markdown artifact (``gep-run-<region>-<year>``) of the flows: the markdown
is :func:`ecoraster.reporting.run_summary.run_summary_markdown`; here only its publication.
"""

from __future__ import annotations

from typing import Any

from ecoraster.reporting.run_summary import artifact_key, run_summary_markdown, run_warnings

__all__ = ["artifact_key", "publish_run_summary", "run_summary_markdown", "run_warnings"]


def publish_run_summary(config: str, workspace: str, summary: dict[str, Any],
                        warnings: list[str] | None = None) -> str | None:
    """Create the markdown artifact of a run (call inside a flow or task); return the markdown.
    Never fails the run: an unreachable API only logs a warning."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    from ecoraster.config import RunConfig

    try:
        cfg = RunConfig.load(config)
        markdown = run_summary_markdown(workspace, summary, warnings=warnings)
        create_markdown_artifact(markdown=markdown, key=artifact_key(cfg.region, cfg.year),
                                 description=f"GEP run summary, {cfg.region_name or cfg.region} {cfg.year}")
    except Exception as exc:  # the summary is a report, never a reason to fail a committed run
        get_run_logger().warning("could not create the run summary artifact: %s", exc)
        return None
    return markdown
