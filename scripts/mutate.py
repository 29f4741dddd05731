"""Hand-written mutants of propbot's guarantees, each run against the tests of its own area: a mutant the tests
catch ("caught") is a bug the suite would stop; one they miss ("SURVIVED") is a hole to close with a test.

    .venv/bin/python scripts/mutate.py            # every mutant
    .venv/bin/python scripts/mutate.py queue gate # the mutants whose name contains one of these words

Each mutant is one small, realistic change (a check dropped, a default widened) to a copy of the tree in a
temporary folder, so the checkout is never touched; the suite's own fixtures start Redis and the fakes. Exit
status 1 when any mutant survived. EQUIVALENT lists mutants known to change no behaviour (none today).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: the test files (and -k) of the guarantee's own area


MUTANTS = [
    Mutant(
        "slack-identity: a click with no team gets the home workspace",
        "adapters/slack/identity.py",
        'team = str(user_team) if isinstance(user_team, str) and user_team else "unknown"',
        "team = str(user_team) if isinstance(user_team, str) and user_team else home",
        ("tests/test_slack_approvals.py", "tests/test_payload_corpus_fuzz.py"),
    ),
    Mutant(
        "history: an outcome that opens the history is dropped",
        "bot/core/history.py",
        'out.insert(0, {"role": "user", "content": EARLIER_NOT_KEPT})',
        "out.clear()",
        ("tests/test_history.py", "tests/test_agent_approvals.py"),
    ),
    Mutant(
        "queue: a redelivered event is queued again",
        "bot/ingress/turn_queue.py",
        "if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end",
        "redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])",
        ("tests/test_turn_queue.py", "tests/test_slack_events.py"),
    ),
    Mutant(
        "agent: a delivery seen before runs again",
        "bot/core/agent.py",
        "if await self.deliveries.first_delivery(msg.event_id, self.limits.dedupe_ttl):",
        "if True:",
        ("tests/test_agent_turns.py", "tests/test_teams_messages.py"),
    ),
    Mutant(
        "permissions: a role's tools are ignored for '*'",
        "bot/core/permissions.py",
        "return WILDCARD in role.tools or tool in role.tools",
        "return tool in role.tools or bool(role.approves)",
        ("tests/test_config_and_permissions.py", "tests/test_security_decisions.py"),
    ),
    Mutant(
        "permissions: self-approval allowed",
        "bot/core/permissions.py",
        "if same_person(user, requested_by) and not self.allow_self_approval:",
        "if False:",
        ("tests/test_agent_approvals.py", "tests/test_security_decisions.py"),
    ),
    Mutant(
        "permissions: a user entry does not win over groups",
        "bot/core/permissions.py",
        "if user in self.spec.users:\n            return [self.spec.users[user]]",
        "if user in self.spec.users and member_of is None:\n            return [self.spec.users[user]]",
        ("tests/test_directory_roles.py",),
    ),
    Mutant(
        "permissions: an e-mail domain matches a longer address",
        "bot/core/permissions.py",
        'return address.endswith(pattern[1:]) and address.count("@") == 1',
        "return address.endswith(pattern[1:])",
        ("tests/test_directory_roles.py",),
    ),
    Mutant(
        "directory: a failed look-up keeps a membership past its bound",
        "bot/core/directory.py",
        "if last is not None and self.clock() - last[1] <= self.max_age:",
        "if last is not None:",
        ("tests/test_directory_roles.py",),
    ),
    Mutant(
        "directory: a group-changed event drops nobody",
        "bot/core/directory.py",
        'await self.notes.put_note(_note_key(principal), "", 1)',
        "pass",
        ("tests/test_directory_roles.py",),
    ),
    Mutant(
        "gate: a Teams user of any tenant is let in",
        "bot/core/gate.py",
        "return team == caller.workspace and (WILDCARD in listed or team in listed)",
        "return team == caller.workspace",
        ("tests/test_gate.py", "tests/test_teams_doors.py"),
    ),
    Mutant(
        "approvals: the execution-time re-check is skipped",
        "bot/core/approved_call.py",
        "if (reason := await gate.no_longer_allowed(approval)) is not None:",
        "if (reason := None) is not None:",
        ("tests/test_security_decisions.py", "tests/test_directory_roles.py"),
    ),
    Mutant(
        "approvals: a lost claim runs the tool anyway",
        "bot/core/approvals.py",
        "        if not won or current is None:\n            if current is not None and current.status is",
        "        if current is None:\n            if current is not None and current.status is",
        ("tests/test_agent_approvals.py",),
    ),
    Mutant(
        "maintenance: a repeated approval creates a second request",
        "tools/maintenance.py",
        "if (existing := await _by_key(session, key)) is not None:",
        "if (existing := None) is not None:",
        ("tests/test_agent_approvals.py", "tests/test_tools_maintenance.py"),
    ),
    Mutant(
        "rate limit: never refuses",
        "bot/core/agent.py",
        "if (refusal := await self.limiter.refuse(msg)) is not None:",
        "if (refusal := None) is not None:",
        ("tests/test_rate_limits.py",),
    ),
    Mutant(
        "onboarding: an overlapping lease is not looked for",
        "tools/onboarding_steps.py",
        "return await _overlapping(conn, pid, args.start_date, args.end_date)",
        "return None",
        ("tests/test_lease_invariant.py",),
    ),
    Mutant(
        "reload: a broken edit replaces the rules",
        "bot/app/reload.py",
        "            self.problem = str(exc)\n            return False",
        "            self.problem = str(exc)\n"
        "            self.gate.permissions = type(self.gate.permissions).open_to_all()\n"
        "            return False",
        ("tests/test_permissions_reload.py",),
    ),
    Mutant(
        "slack stream: a notice after streamed steps is a second message",
        "adapters/slack/live.py",
        "ending = main or next((r for r in replies if isinstance(r, TextReply) and r.is_error and r.text), None)",
        "ending = main",
        ("tests/test_slack_streaming.py",),
    ),
    Mutant(
        "teams: next steps ride on a message with cards",
        "adapters/teams/outbound.py",
        "        if not attachments:\n            parts.answer.suggested_actions = offered",
        "        if True:\n            parts.answer.suggested_actions = offered\n            return parts",
        ("tests/test_teams_ai.py", "tests/test_teams_messages.py"),
    ),
    Mutant(
        "teams: feedback without replyToId counts against no answer",
        "bot/core/surfaces.py",
        'which = feedback.answer or f"latest:{feedback.conversation}"',
        "which = feedback.answer",
        ("tests/test_teams_ai.py",),
    ),
    Mutant(
        "approvals: a follow-up cites nothing",
        "bot/core/approvals.py",
        "reply.sources.extend(approval.sources)",
        "pass",
        ("tests/test_teams_approvals.py",),
    ),
    Mutant(
        "slack door: a payload without a user is let through",
        "adapters/slack/door.py",
        "        if not (isinstance(user_id, str) and user_id):\n            return None",
        '        if not (isinstance(user_id, str) and user_id):\n            user_id = "UMANAGER"',
        ("tests/test_doors.py", "tests/test_payload_corpus.py"),
    ),
]
EQUIVALENT: dict[str, str] = {}


def copy_tree(into: Path) -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(mutant: Mutant, tree: Path) -> tuple[bool, float]:
    """(caught, seconds): the mutant applied to `tree`, its tests run, the file put back."""
    path = tree / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.name}: the text to change is not found exactly once in {mutant.path}")
    path.write_text(original.replace(mutant.old, mutant.new))
    started = time.monotonic()
    try:
        tests = [t for t in mutant.tests if (tree / t).exists() or not t.startswith("tests/")]
        result = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=tree,
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(original)
    return result.returncode != 0, time.monotonic() - started


def main(words: list[str]) -> int:
    chosen = [m for m in MUTANTS if not words or any(w in m.name for w in words)]
    survived = 0
    with tempfile.TemporaryDirectory(prefix="propbot-mutants-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        for mutant in chosen:
            caught, seconds = run(mutant, tree)
            if not caught and mutant.name not in EQUIVALENT:
                survived += 1
            verdict = "caught" if caught else ("equivalent" if mutant.name in EQUIVALENT else "SURVIVED")
            print(f"{verdict:<10} {seconds:6.1f}s  {mutant.name}", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutants caught or equivalent; {survived} survived")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
