"""``seed-demo``: realistic demo students and achievements, in bulk, idempotent."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import secrets
import sys
import uuid

from models import Achievement, AchievementType, CuratorScope, OrgUnit, OrgUnitKind, Role, RuleSet, User
from models.enums import Decision, RuleSetStatus, Status
from service import audit
from service.context import RequestContext
from service.passwords import hash_password
from service.platform.database import close_database, open_database, transaction

FIRST = ["Anna", "Boris", "Chen", "Daria", "Emil", "Fatima", "Georg", "Hana", "Ivan", "Julia", "Kofi", "Lena",
         "Mateo", "Nadia", "Oleg", "Priya", "Quinn", "Rosa", "Sven", "Tara"]
LAST = ["Ivanova", "Schmidt", "Garcia", "Kowalski", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva", "Weber"]
TITLES = {
    "olympiad": ["Regional olympiad in mathematics, {place} place", "National physics olympiad, {place} place"],
    "competition": ["University programming contest, {place} place", "Case championship finalist"],
    "certificate": ["Certificate in data analysis", "Language certificate C1"],
    "conference": ["Talk at the student research conference", "Poster at the international symposium"],
    "publication": ["Article in the university research bulletin", "Co-authored journal paper"],
    "grant": ["Research grant for young scientists", "Travel grant for a summer school"],
    "exhibition": ["Photography exhibition at the city gallery", "Design exhibition participant"],
    "festival": ["Student theatre festival, {place} place", "Short film festival selection"],
    "volunteering": ["Volunteer at the city marathon", "Tutoring school pupils for a semester"],
    "community-project": ["Campus recycling project lead", "Charity fundraiser organiser"],
    "sports-competition": ["University swimming cup, {place} place", "Regional chess tournament, {place} place"],
    "sports-record": ["Faculty record in the 800 m", "Top 10 in the regional running ranking"],
}
PLACES = ["1st", "2nd", "3rd"]
LEVEL_SLUGS = ["faculty", "university", "city", "regional", "national", "international"]
RESULT_SLUGS = ["winner", "prize", "participant", "participant"]
# A rule set modelled on a Russian university's regulation of the enhanced state academic
# scholarship (ПГАС): points by area, level and result, a cap on articles, the preceding year.
DEMO_RULES = [
    {"category": "educational", "level": "international", "result": "winner", "points": 50},
    {"category": "educational", "level": "national", "result": "winner", "points": 40},
    {"category": "educational", "level": "regional", "result": "winner", "points": 25},
    {"category": "educational", "result": "prize", "points": 15},
    {"category": "educational", "points": 5},
    {"type": "publication", "level": "international", "points": 30, "max_items": 2},
    {"type": "publication", "points": 15, "max_items": 2},
    {"type": "grant", "points": 20},
    {"type": "conference", "points": 8, "max_items": 3},
    {"category": "scientific", "points": 5},
    {"category": "social", "points": 6, "max_items": 5},
    {"category": "creative", "result": "winner", "points": 12},
    {"category": "creative", "points": 4},
    {"category": "sports", "level": "national", "points": 20},
    {"category": "sports", "points": 5},
]

# The demo university: faculties, their groups, and a curator (tutor) for each faculty.
FACULTIES = {
    "Faculty of Physics and Mathematics": ["PM-101", "PM-102"],
    "Faculty of Humanities": ["HU-201", "HU-202"],
    "Faculty of Engineering": ["EN-301", "EN-302"],
}


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label:<14} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


# Who the audit log names for what seed-demo writes (no HTTP request, no signed-in actor).
CONTEXT = RequestContext(request_id="cli-seed-demo", ip="cli", user_agent="seed-demo")


async def seed_demo(settings, *, students: int = 20, per_student: int = 25) -> None:
    students, per_student = max(1, min(students, 100_000)), max(0, min(per_student, 1000))
    password = "demo-" + secrets.token_urlsafe(9)
    rng = random.Random(42)
    await open_database(settings)
    try:
        known = set(await User.filter(email__startswith="demo-student-").values_list("email", flat=True))
        emails = [f"demo-student-{i:05d}@example.org" for i in range(1, students + 1)]
        new = [e for e in emails if e not in known]
        hashes = []
        for start in range(0, len(new), 8):
            hashes += await asyncio.gather(*(hash_password(password, settings.bcrypt_rounds)
                                             for _ in new[start:start + 8]))
            _progress("students", len(hashes), len(new))
        if new:
            await User.bulk_create([User(id=uuid.uuid4(), email=email, password_hash=hashed,
                                         full_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}")
                                    for email, hashed in zip(new, hashes, strict=True)],
                                   batch_size=1000, ignore_conflicts=True)
        groups = await _demo_university(settings, password)
        owners = await User.filter(email__in=emails).order_by("email").values("id", "email", "org_unit_id")
        for index, owner in enumerate(owners):  # students without a group join one, round robin
            if owner["org_unit_id"] is None:
                group = groups[index % len(groups)]
                async with transaction() as tx:
                    await User.filter(id=owner["id"]).using_db(tx).update(org_unit_id=group)
                    await audit.record(tx, CONTEXT, "admin.user.updated", target_type="user", target_id=owner["id"],
                                       details={"org_unit_id": [None, str(group)]})
        types = dict(await AchievementType.filter(is_active=True).values_list("slug", "category"))
        slugs = [s for s in TITLES if s in types] or list(types)
        today = dt.date.today()
        for done, owner in enumerate(owners, 1):
            local = random.Random(owner["email"])  # the same titles and dates on every run: idempotent
            rows = []
            for n in range(per_student):
                slug = local.choice(slugs)
                title = local.choice(TITLES.get(slug, ["Achievement"])).format(place=local.choice(PLACES))
                status = local.choice([Status.APPROVED, Status.APPROVED, Status.PENDING])
                rows.append(Achievement(
                    id=uuid.uuid4(), owner_id=owner["id"], title=f"{title} ({n + 1})", type=slug,
                    category=types[slug], date=today - dt.timedelta(days=local.randint(0, 4 * 365)),
                    level=local.choice(LEVEL_SLUGS), result=local.choice(RESULT_SLUGS), status=status,
                    review_decision=Decision.APPROVED if status == Status.APPROVED else None,
                    proof_url=f"https://example.org/proof/{uuid.uuid4().hex[:12]}"))
            async with transaction() as tx:
                # ON CONFLICT DO NOTHING: what an earlier run recorded stays as it was.
                await Achievement.bulk_create(rows, batch_size=1000, ignore_conflicts=True, using_db=tx)
            if done % 10 == 0 or done == len(owners):
                _progress("achievements", done, len(owners))
        await _demo_rule_set(today)
        print(f"demo university: {len(FACULTIES)} faculties, {len(groups)} groups; curators "
              f"demo-curator-1..{len(FACULTIES)}@example.org (one faculty each)")
        if new:
            print(f"demo students: {new[0]} … {new[-1]} ({len(new)} new); password: {password}")
        else:
            print(f"demo students already existed ({len(owners)}); their password is unchanged")
    finally:
        await close_database()


async def _demo_university(settings, password: str) -> list:
    """Faculties and groups under the university (found again on a later run), and one curator
    per faculty with the faculty as scope. Returns the groups' ids."""
    root = await OrgUnit.get(parent_id=None)
    groups = []
    for number, (faculty_name, group_names) in enumerate(FACULTIES.items(), 1):
        faculty = await _demo_unit(faculty_name, OrgUnitKind.FACULTY, root.id)
        for name in group_names:
            groups.append((await _demo_unit(name, OrgUnitKind.GROUP, faculty.id)).id)
        email = f"demo-curator-{number}@example.org"
        curator = await User.get_or_none(email=email)
        if curator is None:
            curator = await User.create(id=uuid.uuid4(), email=email, role=Role.CURATOR,
                                        password_hash=await hash_password(password, settings.bcrypt_rounds),
                                        full_name=f"Tutor of the {faculty_name}")
        async with transaction() as tx:
            _, created = await CuratorScope.get_or_create(user_id=curator.id, org_unit_id=faculty.id, using_db=tx)
            if created:
                await audit.record(tx, CONTEXT, "admin.user.scopes_updated", target_type="user",
                                   target_id=curator.id, details={"added": [str(faculty.id)], "removed": []})
    return groups


async def _demo_unit(name: str, kind: OrgUnitKind, parent_id: uuid.UUID) -> OrgUnit:
    """The unit ``name`` under the parent, created (and audited) unless an earlier run did."""
    async with transaction() as tx:
        unit, created = await OrgUnit.get_or_create(name=name, parent_id=parent_id, using_db=tx,
                                                    defaults={"id": uuid.uuid4(), "kind": kind})
        if created:
            await audit.record(tx, CONTEXT, "org_unit.created", target_type="org_unit", target_id=unit.id,
                               details={"kind": str(kind), "parent_id": str(parent_id), "name": name})
    return unit


async def _demo_rule_set(today: dt.date) -> None:
    """Publish the demo rule set for the last four years (once), so a rating shows at once."""
    name = "Enhanced scholarship (demo, modelled on a university's PGAS regulation)"
    if not await RuleSet.filter(name=name).exists():
        await RuleSet.create(id=uuid.uuid4(), name=name, period_from=today - dt.timedelta(days=4 * 365),
                             period_to=today, rules=DEMO_RULES, status=RuleSetStatus.PUBLISHED,
                             published_at=dt.datetime.now(dt.UTC))
