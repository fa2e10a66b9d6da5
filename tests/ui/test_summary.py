"""The page's short answer from a hand-made report: units as the user wrote them, one format per quantity, costs,
calibration, counts, failures, and the brain's text without server paths or tool names."""

from __future__ import annotations

from test_charts import BASELINE, CANDIDATES, GOAL, cand, failed, make_report

from optimizer.types import Goal, StaticInt8Recipe
from ui.summary import (
    Calibration,
    cost_notes,
    failure_lines,
    goal_text,
    metric_text,
    progress_view,
    result_summary,
    search_line,
    shown_text,
    size_text,
)


def test_size_text_answers_in_the_unit_the_user_wrote_the_limit_in() -> None:
    assert size_text(40_000, GOAL) == "40 KB"
    assert goal_text(GOAL).startswith("under 40 KB")  # not "size <= 0.04 MB"
    mib = Goal(max_size_mb=0.5 * 1024**2 / 1e6, text="below 0.5 MiB")
    assert size_text(0.5 * 1024**2, mib) == "0.5 MiB"
    assert size_text(37_400, None) == "37.4 KB"  # no user unit: the decimal units of optimizer.units


def test_metric_text_writes_accuracy_as_a_percentage_and_other_metrics_as_numbers() -> None:
    assert metric_text("top1", 0.98333) == "98.33%"
    assert metric_text("spearman", 0.81234) == "0.8123"
    assert metric_text("top1", None) == "not measured"


def test_result_summary_states_the_verdict_why_and_the_search_in_the_users_units() -> None:
    text = result_summary(make_report(), calibration=Calibration("eval_head", samples=32), budget_s=60)
    head, why = text.split("\n\n")[:2]
    assert "goal met" in head and "30 KB" in head and "89.80%" in head and "90.00%" in head
    assert why.startswith("Why:") and "under 40 KB" in why and len(why.split()) < 70
    assert "MB" not in text.split("- ")[0]  # the user wrote KB
    assert "Calibrated on the first 32 evaluation samples" in text
    assert "Measured 6 of 8 candidates (1 failed)" in text and "time budget 60 s" in text
    assert "e (" in text and "failed: boom (`technique_failed`)" in text  # the failure with its cause


def test_result_summary_says_a_slower_recommendation_is_slower_in_the_text() -> None:
    slow = cand("a", StaticInt8Recipe(), 30_000, 0.2, 4.5)  # the original's p50 is 3.0 ms
    report = make_report([slow, *CANDIDATES[1:]])
    text = result_summary(report)
    assert "slower than the original: p50 latency 4.5 ms against 3 ms (1.50x)" in text
    assert cost_notes(CANDIDATES[0], BASELINE) == []  # faster and smaller: nothing to confess


def test_cost_notes_state_more_memory_than_the_original() -> None:
    heavy = CANDIDATES[0].model_copy(
        update={"metrics": CANDIDATES[0].metrics.model_copy(update={"peak_memory_bytes": 3_000_000})}  # type: ignore[union-attr]
    )
    [note] = cost_notes(heavy, BASELINE)
    assert "more memory" in note and "3 MB" in note and "2 MB" in note


def test_result_summary_names_the_nearest_when_the_goal_cannot_be_met() -> None:
    impossible = Goal(max_size_mb=0.01, max_accuracy_drop_pct=0.1, objective="size", text="under 10 KB")
    text = result_summary(make_report(goal=impossible))
    assert "your goal cannot be met" in text and "under 10 KB" in text and "Nearest:" in text


def test_failure_lines_give_one_line_per_failure_then_a_count() -> None:
    many = [*CANDIDATES[:1], *(failed(f"x{i}") for i in range(6))]
    lines = failure_lines(make_report(many), limit=4)
    assert len(lines) == 5 and lines[-1].startswith("… and 2 more failed")
    assert all("`technique_failed`" in line for line in lines[:4])


def test_search_line_groups_what_was_skipped_by_why() -> None:
    report = make_report(
        skipped_reasons={
            "s1": "left out by the sweep's 60 s time budget",
            "s2": "left out by the sweep's 60 s time budget",
            "s3": "predicted size 90 KB breaks the limit",
        }
    )
    line = search_line(report)
    assert "not built: 3 (2 left out by the time budget; 1 predicted to break the size limit)" in line


def test_calibration_sentence_names_the_users_file() -> None:
    assert Calibration("file", name="calib.npz", samples=64).sentence() == (
        "Calibrated on your calibration file calib.npz (64 samples)."
    )


def test_shown_text_drops_server_paths_file_lines_and_tool_names() -> None:
    raw = (
        "I ran run_sweep and get_pareto_report.\n"
        "The model is at /srv/quanttaas/artifacts/job-1/model.onnx\n"
        "Files: download /artifacts/job-1/model.onnx"
    )
    shown = shown_text(raw)
    assert "run_sweep" not in shown and "get_pareto_report" not in shown and "the sweep" in shown
    assert "/srv/" not in shown and "Files:" not in shown and "/artifacts/" not in shown


def test_progress_view_moves_before_the_trials_and_counts_measured_of_planned() -> None:
    assert progress_view("baseline", 0, 0)[0] > 0
    frac, text = progress_view("profiled", 0, 0, elapsed_s=34)
    assert frac > 0 and text == "Ranked the layers by sensitivity · 34 s"
    frac, text = progress_view("trial", 3, 4)
    assert round(frac * 100) == 73 and text == "Measured 3 of 4 planned candidates"
    assert progress_view("finished", 1, 1) == (1.0, "Done: measured 1 candidate")
