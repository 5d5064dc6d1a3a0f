"""Loguru setup and context binding (API.md §1.12)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from pyworkflow.observability import (
    bind_step_context,
    bind_workflow_context,
    configure_logging,
    get_logger,
)
from pyworkflow.observability import logging as pw_logging


def _handler_ids() -> set[int]:
    return set(logger._core.handlers)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _restore_loguru() -> Iterator[None]:
    """Leave loguru with exactly the handlers it had, whatever a test added or removed."""
    before = _handler_ids()
    own_before = list(pw_logging._handler_ids)
    yield
    pw_logging._remove_own_handlers()
    pw_logging._handler_ids.extend(h for h in own_before if h in _handler_ids())
    for handler_id in _handler_ids() - before:
        logger.remove(handler_id)
    if before and not _handler_ids():  # a test removed every handler: put a default back
        logger.add(sys.stderr)


def _capture(level: str = "DEBUG") -> tuple[list[str], int]:
    """An application-owned sink that records formatted messages."""
    lines: list[str] = []
    handler_id = logger.add(lines.append, level=level, format="{message}")
    return lines, handler_id


def test_get_logger_binds_module_and_is_cheap() -> None:
    records: list[Any] = []
    sink = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        log = get_logger("myapp.orders")
        assert get_logger("myapp.orders") is log  # cached
        log.info("hello {}", "there")
        assert records[-1]["extra"]["module"] == "myapp.orders"
        assert records[-1]["message"] == "hello there"
        get_logger().info("anonymous")
        assert records[-1]["extra"]["module"] is None
    finally:
        logger.remove(sink)


def test_bind_contexts() -> None:
    records: list[Any] = []
    sink = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        bind_workflow_context("run_1", "order").info("wf")
        assert records[-1]["extra"] == {"run_id": "run_1", "workflow_name": "order"}
        bind_step_context("run_1", "step_a", "charge").info("st")
        assert records[-1]["extra"] == {
            "run_id": "run_1",
            "step_id": "step_a",
            "step_name": "charge",
        }
    finally:
        logger.remove(sink)


def test_configure_logging_keeps_application_handlers_and_replaces_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines, app_handler = _capture()
    configure_logging(level="WARNING")
    first_ids = list(pw_logging._handler_ids)
    configure_logging(level="error")
    assert len(pw_logging._handler_ids) == 1
    assert not set(first_ids) & _handler_ids()  # the first call's handler is gone
    assert app_handler in _handler_ids()

    logger.warning("only the app sees this")
    logger.error("both see this")
    err = capsys.readouterr().err
    assert "both see this" in err and "only the app sees this" not in err
    assert lines[-2:] == ["only the app sees this\n", "both see this\n"]


def test_configure_logging_replaces_loguru_default_handler() -> None:
    # loguru's built-in handler (id 0) exists only in a fresh process.
    script = (
        "from loguru import logger\n"
        "from pyworkflow.observability import configure_logging\n"
        "configure_logging(level='WARNING')\n"
        "logger.info('hidden-info')\n"
        "logger.warning('shown-warning')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert "hidden-info" not in result.stderr
    assert result.stderr.count("shown-warning") == 1


def test_context_shown_in_console_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO")
    bind_step_context("run_42", "step_{x}", "charge").info("with context")
    logger.info("without context")
    err = capsys.readouterr().err.splitlines()
    with_line = next(line for line in err if "with context" in line)
    assert "run_id=run_42" in with_line and "step_id=step_{x}" in with_line
    without_line = next(line for line in err if "without context" in line)
    assert "run_id=" not in without_line


def test_show_context_false(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(show_context=False)
    bind_workflow_context("run_7", "wf").info("plain")
    err = capsys.readouterr().err
    assert "plain" in err and "run_id=" not in err


def test_json_logs(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_logs=True)
    bind_workflow_context("run_9", "wf").info("as json")
    line = next(x for x in capsys.readouterr().err.splitlines() if "as json" in x)
    payload = json.loads(line)
    assert payload["record"]["extra"]["run_id"] == "run_9"
    assert payload["record"]["message"] == "as json"


def test_log_file_with_rotation_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_calls: list[dict[str, Any]] = []

    class RecordingLogger:
        def __getattr__(self, name: str) -> Any:
            return getattr(logger, name)

        def add(self, sink: Any, **kwargs: Any) -> int:
            add_calls.append(kwargs)
            return logger.add(sink, **kwargs)

    monkeypatch.setattr(pw_logging, "logger", RecordingLogger())
    log_file = tmp_path / "logs" / "pyworkflow.log"
    configure_logging(level="DEBUG", log_file=log_file)
    assert len(pw_logging._handler_ids) == 2
    file_kwargs = add_calls[-1]
    assert file_kwargs["rotation"] == "100 MB" and file_kwargs["retention"] == "30 days"
    assert file_kwargs["compression"] == "gz"
    bind_step_context("run_f", "step_f", "s").debug("to the file")
    text = log_file.read_text(encoding="utf-8")
    assert "to the file" in text and "run_id=run_f" in text
    assert "\x1b[" not in text  # no colour codes in files


def test_import_adds_no_handler_when_one_exists() -> None:
    lines, _ = _capture()
    before = _handler_ids()
    own_before = list(pw_logging._handler_ids)
    importlib.reload(pw_logging)
    assert _handler_ids() == before
    pw_logging._handler_ids.extend(own_before)
    assert lines == []


def test_import_adds_info_handler_when_app_removed_all() -> None:
    saved = pw_logging._handler_ids[:]
    logger.remove()
    try:
        importlib.reload(pw_logging)
        assert len(pw_logging._handler_ids) == 1
        assert set(pw_logging._handler_ids) == _handler_ids()
        handler = logger._core.handlers[pw_logging._handler_ids[0]]  # type: ignore[attr-defined]
        assert handler.levelno == logger.level("INFO").no
    finally:
        pw_logging._handler_ids.extend(h for h in saved if h in _handler_ids())
