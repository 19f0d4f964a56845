"""Every Redis key, stream and consumer-group name, built from the prefix.

Nothing else spells a key inline. Key segments are whole words (docs/ARCHITECTURE.md has the
table); :data:`RENAMED` lists the earlier, abbreviated names, which ``checkin migrate-keys``
renames once after an upgrade. Keys that the check-in script touches in one
call carry the stream shard's hash tag ``{n}`` (n = venue_id mod shards), so a
Redis Cluster keeps them in one slot. Per-person state the script reads
(``pstate``) is therefore kept once per shard in cluster mode, and once (tag 0)
on a single node.
"""

from __future__ import annotations

from dataclasses import dataclass

SINK_GROUP = "sink"
RULES_GROUP = "rules"
ALERTS_HISTORY_GROUP = "alerts-history"
"""Consumer group on the alerts stream that copies alerts into ClickHouse."""
AUDIT_GROUP = "audit-history"
"""Consumer group on the audit stream that copies audit rows into ClickHouse."""
TEXTS_GROUP = "texts"
"""Consumer group on the notice texts outbox that hands each text to the SMS gateway."""
NOTICES_GROUP = "notices"
"""Consumer group on the alerts stream that tells the visitors of exposure sites."""


RENAMED: tuple[tuple[str, str, bool], ...] = (
    # (earlier name, name now, whole key (True) or leading segments (False)), after the prefix
    ("scans:dead", "scans:dead-letters", True),
    ("venues:seq", "venues:sequence", True),
    ("venues:mirror", "venues:mirror-queue", True),
    ("persons:seq", "persons:sequence", True),
    ("person:idn:", "person:by-id-number:", False),
    ("pstate:", "person-state:", False),
    ("dd:", "dedupe:", False),
    ("ci:", "checkin-record:", False),
    ("vcount:", "venue-entries:", False),
    ("apikey:", "api-key:", False),
    ("apikeys", "api-keys", True),
    ("rules:dd:", "rules:dedupe:", False),
    ("rules:cap:", "rules:capacity:", False),
    ("rules:occ:", "rules:occupancy:", False),
    ("rules:last:", "rules:last-checkin:", False),
    ("rules:exposure_sites", "rules:exposure-sites", True),
    ("rules:exposure_sites:gen", "rules:exposure-sites:generation", True),
)
"""Keys of the earlier layout and their names now. Rate-limit counters are not listed: they live a
minute."""


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "checkin:"
    shards: int = 4
    cluster: bool = False

    # --- scan streams -------------------------------------------------------
    def shard_of(self, venue_id: int) -> int:
        return venue_id % self.shards

    def stream(self, shard: int) -> str:
        """``checkin:scans:{n}``, hash-tagged by the shard number."""
        return f"{self.prefix}scans:{{{shard}}}"

    def streams(self) -> list[str]:
        return [self.stream(n) for n in range(self.shards)]

    def dead_letters(self) -> str:
        return f"{self.prefix}scans:dead-letters"

    def alerts_stream(self) -> str:
        return f"{self.prefix}alerts"

    def audit_stream(self) -> str:
        """Audit rows of services without ClickHouse, on their way to the ``audit`` table."""
        return f"{self.prefix}audit"

    def audit_dead_letters(self) -> str:
        return f"{self.prefix}audit:dead-letters"

    def alerts_dead_letters(self) -> str:
        """Alert entries the history writer could not decode."""
        return f"{self.prefix}alerts:dead-letters"

    # --- venues ---------------------------------------------------------------
    def venue(self, venue_id: int) -> str:
        """Hash of one venue's registry fields, in its stream shard's slot."""
        return f"{self.prefix}venue:{{{self.shard_of(venue_id)}}}:{venue_id}"

    def venue_prefix(self, shard: int) -> str:
        """``venue(id)`` without the id, for venues of stream shard ``shard`` (scripts that read the
        venue a record names)."""
        return f"{self.prefix}venue:{{{shard}}}:"

    def venue_history(self, venue_id: int) -> str:
        """List of the venue's changes (JSON, newest first), in the venue's slot."""
        return f"{self.prefix}venue-history:{{{self.shard_of(venue_id)}}}:{venue_id}"

    def venue_index(self) -> str:
        """Sorted set of every venue id (score = id)."""
        return f"{self.prefix}venues:ids"

    def venue_scope_index(self, community: str) -> str:
        """Set of venue ids in one community (jurisdiction lookups)."""
        return f"{self.prefix}venues:community:{community}"

    def venue_seq(self) -> str:
        return f"{self.prefix}venues:sequence"

    def venue_communities(self) -> str:
        """Sorted set (all scores 0) of community codes that have venues: prefix scans by ZRANGEBYLEX."""
        return f"{self.prefix}venues:communities"

    def venue_mirror_queue(self) -> str:
        """Venue ids whose registry changed and must be mirrored to ClickHouse.

        A sorted set: member = venue id, score = time of the last change (microseconds)."""
        return f"{self.prefix}venues:mirror-queue"

    # --- residents and health -----------------------------------------------
    def person_seq(self) -> str:
        return f"{self.prefix}persons:sequence"

    def person(self, person_id: int) -> str:
        """Profile hash: name, encrypted phone, id hash, created_at."""
        return f"{self.prefix}person:{person_id}"

    def person_by_id_hash(self, id_hash: str) -> str:
        return f"{self.prefix}person:by-id-number:{id_hash}"

    def companions(self, person_id: int) -> str:
        return f"{self.prefix}person:{person_id}:companions"

    def person_by_phone_hash(self, phone_hash: str) -> str:
        """Set of the person ids whose phone on record has this keyed hash."""
        return f"{self.prefix}person:by-phone:{phone_hash}"

    def guardians(self, person_id: int) -> str:
        """Set of the persons who may check this person in (the reverse of ``companions``)."""
        return f"{self.prefix}person:{person_id}:guardians"

    def pending_guardians(self, person_id: int) -> str:
        """The part of ``guardians`` that waits for this person's confirmation (links made before
        they took over their record); left out of the guardians' ``cmp`` until confirmed."""
        return f"{self.prefix}person:{person_id}:pending-guardians"

    def door_pass_read(self, pass_digest: str) -> str:
        """The first read of a door pass (``venue|device|scan ms``), for the pass's lifetime."""
        return f"{self.prefix}door-pass:{pass_digest}"

    # --- one-time codes -------------------------------------------------------------
    def answered_persons(self, key_id: str) -> str:
        """Sorted set of the persons trace and exposure answers named to one key (score = until ms):
        the purpose binding of ``contact-details``."""
        return f"{self.prefix}answered:{key_id}"

    def otp_challenge(self, challenge_id: str) -> str:
        return f"{self.prefix}otp:challenge:{challenge_id}"

    def otp_phone_minute(self, phone_hash: str) -> str:
        return f"{self.prefix}otp:phone-minute:{phone_hash}"

    def otp_phone_day(self, phone_hash: str, day: str) -> str:
        return f"{self.prefix}otp:phone-day:{phone_hash}:{day}"

    def pstate_tag(self, shard: int) -> int:
        return shard if self.cluster else 0

    def pstate(self, person_id: int, shard: int = 0) -> str:
        """Hot per-person state the check-in script reads: colour, tests, watchlist, masked name."""
        return f"{self.prefix}person-state:{{{self.pstate_tag(shard)}}}:{person_id}"

    def pstate_prefix(self, shard: int) -> str:
        """``pstate(person_id, shard)`` without the id: the check-in script reads the hot state of
        persons an earlier check-in names (a repeat scan answers their state now)."""
        return f"{self.prefix}person-state:{{{self.pstate_tag(shard)}}}:"

    def pstate_copies(self, person_id: int) -> list[str]:
        if not self.cluster:
            return [self.pstate(person_id, 0)]
        return [self.pstate(person_id, n) for n in range(self.shards)]

    def stays(self, person_id: int, shard: int = 0) -> str:
        """The person's recent stays as one string (checkin/checkins/stays.lua has its layout), for
        the one-place-at-a-time rule of the check-in script; tagged like ``pstate``
        (docs/ARCHITECTURE.md, "Stays and contacts")."""
        return f"{self.stays_prefix(shard)}{person_id}"

    def stays_prefix(self, shard: int) -> str:
        """``stays(person_id, shard)`` without the id (the scripts build the names)."""
        return f"{self.prefix}person-stays:{{{self.pstate_tag(shard)}}}:"

    # --- check-ins --------------------------------------------------------------
    def dedupe(self, shard: int, person_id: int) -> str:
        """Hash of one owner's recent check-ins at this shard: ``c:<client id>`` -> check-in id,
        ``v:<venue id>`` -> ``check-in id|scan instant`` (kept as long as the records)."""
        return f"{self.prefix}dedupe:{{{shard}}}:{person_id}"

    def checkin_record(self, shard: int, checkin_id: str) -> str:
        return f"{self.prefix}checkin-record:{{{shard}}}:{checkin_id}"

    def venue_entries(self, shard: int, local_day: str) -> str:
        """Hash venue_id -> check-ins counted on one local day (YYYYMMDD), for operators; and
        ``<venue_id>:<unix hour>`` -> the check-ins of that hour (the operator page's chart)."""
        return f"{self.prefix}venue-entries:{{{shard}}}:{local_day}"

    def rate_tagged(self, shard: int, kind: str, ident: str, window: int) -> str:
        """Fixed-window counter the check-in script bumps: tagged like ``pstate`` (one copy on a
        single node; per shard in cluster mode, so each shard enforces the limit on its own)."""
        return f"{self.prefix}rate:{{{self.pstate_tag(shard)}}}:{kind}:{ident}:{window}"

    # --- access ------------------------------------------------------------------
    def display_setup(self, code_hash: str) -> str:
        """One door screen's set-up code (keyed by its SHA-256): the venue and the device key sealed
        with the code; read once."""
        return f"{self.prefix}display-setup:{code_hash}"

    def api_key(self, key_hash: str) -> str:
        return f"{self.prefix}api-key:{key_hash}"

    def api_key_index(self) -> str:
        return f"{self.prefix}api-keys"

    def api_keys_of_venue(self, venue_id: int) -> str:
        """Set of the ids of the keys bound to one venue (what its operator lists and revokes)."""
        return f"{self.prefix}api-keys:venue:{venue_id}"

    def rate(self, kind: str, ident: str, window: int) -> str:
        return f"{self.prefix}rate:{kind}:{ident}:{window}"

    # --- rules -------------------------------------------------------------------
    def rule_dedupe(self, kind: str, person_id: int, venue_id: int, day: str) -> str:
        return f"{self.prefix}rules:dedupe:{kind}:{person_id}:{venue_id}:{day}"

    def capacity_dedupe(self, venue_id: int, hour: int) -> str:
        return f"{self.prefix}rules:capacity:{venue_id}:{hour}"

    def venue_alerts(self, venue_id: int) -> str:
        """List of the venue's recent alerts its operator may read (capacity; JSON without persons),
        newest first, kept by the rule engine."""
        return f"{self.prefix}rules:venue-alerts:{venue_id}"

    def occupancy(self, venue_id: int) -> str:
        """Sorted set of stays at a venue, score = stay end (ms)."""
        return f"{self.prefix}rules:occupancy:{venue_id}"

    def last_checkin(self, person_id: int) -> str:
        return f"{self.prefix}rules:last-checkin:{person_id}"

    def exposure_sites(self) -> str:
        """Hash site_id -> JSON of one flagged period at a venue."""
        return f"{self.prefix}rules:exposure-sites"

    def notices(self, person_id: int) -> str:
        """Hash of one person's exposure notices: notice id (the exposure site's id) -> JSON."""
        return f"{self.prefix}person:{person_id}:notices"

    def notify_queue(self) -> str:
        """List of exposure-site ids whose already-exposed visitors are still to be told."""
        return f"{self.prefix}notices:{{q}}:queue"

    def notify_working(self) -> str:
        """The site being told now (moved here from the queue; put back if the worker dies); same
        hash tag as the queue, so one LMOVE moves between them on a Redis Cluster too."""
        return f"{self.prefix}notices:{{q}}:working"

    def notice_texts(self) -> str:
        """Stream of the notice texts still to send (recipient, notice id): written with the notices,
        sent by the notices worker, acknowledged (group ``texts``) and deleted once the gateway
        took them (docs/ARCHITECTURE.md, "Notices to residents")."""
        return f"{self.prefix}notices:{{q}}:texts"

    def notices_dead_letters(self) -> str:
        """Alert entries the notices worker could not decode."""
        return f"{self.prefix}notices:dead-letters"

    def exposure_sites_gen(self) -> str:
        """Counter bumped on every exposure-site change (rule engines reload their copy)."""
        return f"{self.prefix}rules:exposure-sites:generation"

    # --- service state -----------------------------------------------------------
    def metrics(self, service: str) -> str:
        return f"{self.prefix}metrics:{service}"
