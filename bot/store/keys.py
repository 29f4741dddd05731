"""Redis key layout of the state store.

Every key starts with `pb:`. Braces mark the Redis Cluster hash tag: only the text between the first
`{` and the following `}` picks the slot, so keys that must be touched together share one tag.

    pb:{<conversation>}:history   string, JSON array of Chat Completions messages; expires after
                                  `history_ttl` seconds without a save
    pb:{<conversation>}:version   string, a counter bumped by every write of the history (same expiry): an
                                  append is a compare-and-set on it, so turns that overlap both land whole
    pb:{<conversation>}:done:<delivery>
                                  string, the outcome of that delivery's turn, saved in the same script as
                                  the history: `s|<replies JSON>` until the replies were delivered, then
                                  `d`; a turn taken over after a crash finds it and does not run again
    pb:dedupe:{<event_id>}        string "1" (SET NX PX): the platform delivery was already seen
    pb:approval:{<approval_id>}   hash, one approval (kept `keep_for` seconds, for audit):
                                    status      authoritative ApprovalStatus value
                                    created_at  float, informational
                                    expires_at  float, read by the transition script
                                    data        JSON of the whole Approval at creation
                                    f:<field>   JSON of a field changed later; overrides `data`
                                    tx          token of the last winning transition (retry safety)
    pb:approvals:pending          sorted set of approval ids scored by created_at, written before the
                                  approval's own key and kept until its final outcome was announced
                                  (`settle`): the sweeper expires pending ones and announces outcomes
                                  whose decider stopped first. Readers re-check the status.
    pb:approvals:running          sorted set of approval ids claimed (or about to be: it is written before
                                  the claim), scored by when their run is due to be checked; the sweeper
                                  finishes `approved` ones whose run stalled or whose outcome was unknown
    pb:{turns}:stream             stream of accepted messages (bot.ingress.turn_queue), one consumer group
    pb:{turns}:seen:<event_id>    string "1": the delivery was queued; set in the same script as the XADD
    pb:{rate:<group>}:<name>      string, the GCRA "theoretical arrival time" (microseconds, Redis
                                  clock) of one rate limit; <group> is `platform:workspace` so the
                                  workspace counter and its users' counters share a slot (one script)
    pb:{cache}:gen:<tool>         integer, the tool's cache generation; a write INCRs it
    pb:{cache}:v:<tool>:<hash>    string `<generation>|<ToolResult JSON>` (PX cache_ttl); stale once
                                  the generation moves on, so invalidation never needs SCAN/DEL
    pb:audit                      stream, the audit trail (see bot.observability.audit_stream)

`<conversation>` is `Conversation.key` (`slack:T1:C1`), which starts with the platform name, so the
tag is never empty and history + version + outcome always land in the same slot (a `}` inside the key would
shorten the tag, but identically for both keys). The approval and dedupe keys are tagged only so
that ids containing `:` keep all of their text in the slot choice; they are never combined with other
keys in one command.
"""

from __future__ import annotations

PREFIX = "pb:"
PENDING_INDEX = f"{PREFIX}approvals:pending"
# Approvals claimed (approved) whose outcome is not recorded, scored by when to check on them: a process that
# died between the claim and the result, or a tool whose outcome was unknown, leaves its approval here.
RUNNING_INDEX = f"{PREFIX}approvals:running"


def _tag(value: str) -> str:
    if not value:
        # An empty tag `{}` makes Redis hash the whole key, splitting keys meant to share a slot.
        raise ValueError("store key part must not be empty")
    return "{" + value + "}"


def history(conversation: str) -> str:
    return f"{PREFIX}{_tag(conversation)}:history"


def version(conversation: str) -> str:
    return f"{PREFIX}{_tag(conversation)}:version"


def finished(conversation: str, delivery: str) -> str:
    """What a delivery's turn answered, written with the history that records it (same slot, same script)."""
    return f"{PREFIX}{_tag(conversation)}:done:{delivery}"


def dedupe(event_id: str) -> str:
    return f"{PREFIX}dedupe:{_tag(event_id)}"


def note(key: str) -> str:
    return f"{PREFIX}note:{_tag(key)}"


def approval(approval_id: str) -> str:
    return f"{PREFIX}approval:{_tag(approval_id)}"


def rate(group: str, name: str) -> str:
    return f"{PREFIX}{_tag('rate:' + group)}:{name}"


CACHE_TAG = "{cache}"


def cache_generation(tool: str) -> str:
    return f"{PREFIX}{CACHE_TAG}:gen:{tool}"


def cache_entry(tool: str, digest: str) -> str:
    return f"{PREFIX}{CACHE_TAG}:v:{tool}:{digest}"


AUDIT_STREAM = f"{PREFIX}audit"
