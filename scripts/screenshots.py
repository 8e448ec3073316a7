"""Takes the screenshots of `scripts/screenshots` (see there): run pages of the latest finished
run of `perfdb_job`, of the latest run that failed because a step failed (a `JobStepError`) and
of the latest run of a canceled job, with the log filtered to the events that carry the summary
and the step pictures; the latest Feature Calculation run (its steps in dependency order); the
asset lineage and a feature's asset page with its materializations; and, without the UI, the
report pictures of `report_pictures.py` (a small and a large fleet's heat map, `alarms plot`
with short occurrences)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from playwright.sync_api import Page, sync_playwright
from report_pictures import save_report_pictures

from jobs_pipeline.orchestration.tags import JOB_TYPE_TAG

CHROMIUM = "/usr/bin/chromium"


def latest_run(status: dg.DagsterRunStatus, job_type: str | None = None) -> dg.DagsterRun | None:
    tags = {} if job_type is None else {JOB_TYPE_TAG: job_type}
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            dg.RunsFilter(job_name="perfdb_job", statuses=[status], tags=tags), limit=1
        )
    return runs[0] if runs else None


def step_failures(run: dg.DagsterRun) -> list[tuple[str, str]]:
    """(step key, description) of each failed op of the run."""
    with dg.DagsterInstance.get() as instance:
        entries = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    failures = []
    for entry in entries:
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        described = getattr(getattr(data, "user_failure_data", None), "description", None)
        failures.append((entry.step_key or "", described or ""))
    return failures


def latest_failed_runs(limit: int = 50) -> tuple[dg.DagsterRun | None, dg.DagsterRun | None]:
    """The latest failed run whose steps failed, and the latest run of a canceled job (it ends
    Canceled, its one failed op says so)."""
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            dg.RunsFilter(job_name="perfdb_job", statuses=[dg.DagsterRunStatus.FAILURE]),
            limit=limit,
        )
    failed = next(
        (
            run
            for run in runs
            if step_failures(run)
            and not any(" was canceled by " in text for _, text in step_failures(run))
        ),
        None,
    )
    return failed, latest_run(dg.DagsterRunStatus.CANCELED)


def first_step_op(run: dg.DagsterRun) -> str | None:
    """The step key of the run's first step op, e.g. `run_step[s3_LAN_01_1001]`."""
    with dg.DagsterInstance.get() as instance:
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
            if entry.step_key and entry.step_key.startswith("run_step["):
                return entry.step_key
    return None


def dismiss_dialogs(page: Page) -> None:
    for label in ("Skip", "Dismiss", "Close"):
        button = page.get_by_role("button", name=label)
        if button.count():
            button.first.click()


def shoot(
    page: Page, url: str, path: Path, *, markdown: str | None = None, expand: bool = False
) -> None:
    """A screenshot of `url`; with `markdown`, after opening the last "[Show Markdown]" entry
    of that metadata label (the pictures are markdown with an inline PNG); with `expand`, after
    opening the last event's full message (all of a step output's metadata)."""
    page.goto(url)
    time.sleep(5)
    dismiss_dialogs(page)
    time.sleep(1)
    if markdown is not None:
        rows = page.locator("tr", has_text=markdown).get_by_text("Show Markdown").all()
        links = rows or page.get_by_text("Show Markdown").all()
        if links:
            # The log's cells clip their content; a dispatched click reaches the link anyway.
            links[-1].dispatch_event("click")
            time.sleep(3)
    if expand:
        buttons = page.get_by_text("View full message").all()
        if buttons:
            buttons[-1].dispatch_event("click")
            time.sleep(3)
    page.screenshot(path=str(path), full_page=False)
    print(path)


def shoot_assets(page: Page, ui: str, out: Path) -> None:
    """The order of a Feature Calculation run's steps (its timeline: `efficiency` after
    `dc_power`), the lineage of the features and alarm occurrences, and the asset page of a
    derived feature with the materializations its steps reported."""
    features = latest_run(dg.DagsterRunStatus.SUCCESS, "Feature Calculation")
    if features is not None:
        # The timeline, and the log of step starts: `efficiency` ops after `dc_power` ones.
        shoot(
            page,
            f"{ui}/runs/{features.run_id}?logs={quote('type:STEP_START')}",
            out / "feature-run-order.png",
        )
        shoot(
            page,
            f"{ui}/runs/{features.run_id}?logs={quote('type:ASSET_MATERIALIZATION')}",
            out / "feature-run-materializations.png",
        )
    # Everything the efficiency alarm's occurrences come from.
    shoot(
        page,
        f"{ui}/assets/alarm_occurrences/alarm_2002?view=lineage&lineageScope=upstream"
        "&lineageDepth=4",
        out / "asset-lineage.png",
    )
    shoot(page, f"{ui}/assets/features/efficiency", out / "asset-efficiency.png")


def main() -> None:
    out, ui = Path(sys.argv[1]), sys.argv[2].rstrip("/")
    save_report_pictures(out)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        finished = latest_run(dg.DagsterRunStatus.SUCCESS)
        if finished is not None:
            base = f"{ui}/runs/{finished.run_id}"
            shoot(page, base, out / "finished-run-summary.png")
            shoot(page, base, out / "finished-run-fleet.png", markdown="fleet")
            step_key = first_step_op(finished)
            if step_key is not None:
                shoot(
                    page,
                    f"{base}?logs={quote(f'step:{step_key}')}",
                    out / "step-timeline.png",
                    markdown="timeline",
                )
                # The step's data quality and counts, as its output's metadata.
                shoot(
                    page,
                    f"{base}?logs={quote(f'step:{step_key}')}",
                    out / "step-metadata.png",
                    expand=True,
                )
        # The runs list: each run's job description is one of its tags.
        shoot(page, f"{ui}/runs", out / "runs-list.png")
        shoot_assets(page, ui, out)
        failed, canceled = latest_failed_runs()
        if failed is not None:
            base = f"{ui}/runs/{failed.run_id}"
            shoot(page, base, out / "failed-run-summary.png")
            shoot(page, base, out / "failed-run-steps.png", markdown="steps_not_finished")
            # A step that failed for a reason meant for people: its message comes first.
            step_key = step_failures(failed)[0][0]
            shoot(
                page,
                f"{base}?logs={quote(f'step:{step_key}')}",
                out / "failed-step-message.png",
                expand=True,
            )
        if canceled is not None:
            # Finished steps green, the op that met the cancel red, the rest never started.
            base = f"{ui}/runs/{canceled.run_id}"
            shoot(page, base, out / "canceled-run.png")
            shoot(page, base, out / "canceled-run-outcome.png", markdown="steps_not_finished")
        browser.close()


if __name__ == "__main__":
    main()
