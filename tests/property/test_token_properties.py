"""Properties of hook tokens (engine/hooks.py, engine/hook_delivery.py, resume_hook).

* tokens made by ``create_hook_token`` / the engine parse back to their run and hook ids;
* ``parse_hook_token`` on any text returns a consistent split or raises
  ``InvalidTokenError`` (the documented error), nothing else;
* against a real hook, created once per storage by a real durable workflow (in-memory
  and a SQLite file), every token other than the exact one (one character of the
  secret changed, removed or added, the secret cut short or lengthened, its case
  swapped, either id changed, arbitrary text) finds no hook: ``HookNotFoundError`` or
  ``InvalidTokenError``, and nothing is recorded; afterwards the real token still
  resumes the hook, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyworkflow import hook, resume_hook, start, workflow
from pyworkflow.core.exceptions import (
    HookAlreadyReceivedError,
    HookNotFoundError,
    InvalidTokenError,
)
from pyworkflow.engine.hook_delivery import find_hook
from pyworkflow.engine.hooks import new_hook_token, split_token
from pyworkflow.primitives.resume_hook import create_hook_token, parse_hook_token
from pyworkflow.runtime.local import _services
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import HookStatus, RunStatus
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.property.strategies import prop_settings

# Every code point, lone surrogates included (a JSON body can carry "\ud800"), and the
# characters worth trying often: separators, url-safe base64, NUL, non-ASCII.
any_char = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from([":", "-", "_", "=", "\x00", "\u00e9", "\ud800", "\udfff", "A", "z", "0"]),
)
any_text = st.text(alphabet=any_char, max_size=40)
ids = st.text(alphabet=any_char, min_size=1, max_size=12)


@workflow(name="prop_token_wait")
async def wait_for_approval() -> Any:
    return await hook("approve")


@dataclass
class RealHook:
    loop: asyncio.AbstractEventLoop
    store: StorageBackend
    run_id: str
    hook_id: str
    token: str
    events: int

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


async def _create(store: StorageBackend) -> tuple[str, str, str, int]:
    await store.connect()
    run_id = await start(wait_for_approval, durable=True, storage=store)
    (pending,) = await store.list_hooks(run_id)
    return run_id, pending.hook_id, pending.token, len(await store.get_events(run_id))


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def real_hook(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealHook]:
    """One waiting hook per storage kind, shared by every example (one event loop)."""
    loop = asyncio.new_event_loop()
    store: StorageBackend
    if request.param == "memory":
        store = InMemoryStorageBackend()
    else:
        store = SQLiteStorageBackend(str(tmp_path_factory.mktemp("tokens") / "wf.db"))
    run_id, hook_id, token, events = loop.run_until_complete(_create(store))
    yield RealHook(loop, store, run_id, hook_id, token, events)
    for service in _services.get(loop, {}).values():
        loop.run_until_complete(service.stop())
    loop.run_until_complete(store.disconnect())
    loop.close()


# ---------------------------------------------------------------------- parsing


@prop_settings(100)
@given(ids.filter(lambda s: ":" not in s), ids)
def test_created_tokens_parse_back_to_their_ids(run_id: str, hook_id: str) -> None:
    assert parse_hook_token(create_hook_token(run_id, hook_id)) == (run_id, hook_id)
    token = new_hook_token(run_id, hook_id)
    found_run, found_hook, secret = split_token(token)
    assert (found_run, found_hook) == (run_id, hook_id)
    assert len(secret) >= 32 and ":" not in secret  # 192 random bits, url-safe
    assert parse_hook_token(token) == (run_id, f"{hook_id}:{secret}")


@prop_settings(200)
@given(any_text)
def test_parsing_any_text_splits_it_or_raises_invalid_token(text: str) -> None:
    try:
        run_id, rest = parse_hook_token(text)
    except InvalidTokenError as error:
        assert "Invalid token format" in str(error)
        return
    assert f"{run_id}:{rest}" == text
    assert run_id and rest and ":" not in run_id


# ---------------------------------------------------------------------- lookups


@st.composite
def other_tokens(draw: st.DrawFn, token: str) -> str:
    """A token that is not ``token``: mostly small edits of its secret."""
    run_id, hook_id, secret = split_token(token)
    head = f"{run_id}:{hook_id}:"
    i = draw(st.integers(0, len(secret) - 1))
    char = draw(any_char)
    kind = draw(st.sampled_from(["replace", "delete", "insert", "cut", "extend", "case", "ids"]))
    if kind == "replace":
        candidate = head + secret[:i] + char + secret[i + 1 :]
    elif kind == "delete":
        candidate = head + secret[:i] + secret[i + 1 :]
    elif kind == "insert":
        candidate = head + secret[:i] + char + secret[i:]
    elif kind == "cut":
        candidate = head + secret[:i]
    elif kind == "extend":
        candidate = token + draw(st.text(alphabet=any_char, min_size=1, max_size=4))
    elif kind == "case":
        candidate = head + secret.swapcase()
    else:
        candidate = draw(st.sampled_from([f"{run_id}x:{hook_id}:", f"{run_id}:{hook_id}x:"]))
        candidate += secret
    candidate = draw(st.one_of(st.just(candidate), any_text))
    return candidate if candidate != token else token + "x"


async def _refused(real: RealHook, candidate: str) -> None:
    for attempt in (
        lambda: find_hook(real.store, candidate),
        lambda: resume_hook(candidate, {"ok": True}, storage=real.store),
    ):
        with pytest.raises((HookNotFoundError, InvalidTokenError)):
            await attempt()


@prop_settings(150)
@given(st.data())
def test_any_other_token_finds_no_hook(real_hook: RealHook, data: st.DataObject) -> None:
    candidate = data.draw(other_tokens(real_hook.token), label="token")
    real_hook.run(_refused(real_hook, candidate))


async def _unchanged_then_resumed_once(real: RealHook) -> None:
    store = real.store
    assert len(await store.get_events(real.run_id)) == real.events  # nothing recorded
    found = await store.get_hook(real.hook_id, real.run_id)
    assert found is not None and found.status is HookStatus.PENDING
    await resume_hook(real.token, {"ok": True}, storage=store)
    with pytest.raises(HookAlreadyReceivedError):
        await resume_hook(real.token, {"ok": False}, storage=store)
    run = await store.get_run(real.run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


def test_real_token_still_resumes_once_after_the_mutations(real_hook: RealHook) -> None:
    """Runs after the property in this module: the refused tokens changed nothing."""
    real_hook.run(_unchanged_then_resumed_once(real_hook))


# ---------------------------------------------------------------------- regressions


@pytest.mark.parametrize("where", ["secret", "run_id"])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_regression_token_with_lone_surrogate_is_not_found(
    kind: str, where: str, tmp_path: Path
) -> None:
    """A token carrying a lone surrogate (JSON can send "\\ud800") made ``find_hook`` /
    ``resume_hook`` raise ``UnicodeEncodeError`` (hmac.compare_digest over
    ``str.encode()``, and the SQLite driver binding the ids) instead of
    ``HookNotFoundError``."""

    async def scenario() -> None:
        store: StorageBackend = (
            InMemoryStorageBackend()
            if kind == "memory"
            else SQLiteStorageBackend(str(tmp_path / "wf.db"))
        )
        run_id, _, token, _ = await _create(store)
        bad = token + "\ud800" if where == "secret" else token.replace(run_id, run_id + "\udcff")
        try:
            with pytest.raises((HookNotFoundError, InvalidTokenError)):
                await resume_hook(bad, {"ok": True}, storage=store)
        finally:
            await store.disconnect()

    asyncio.run(scenario())
