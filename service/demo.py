"""``seed-demo``: realistic demo students and achievements, in bulk, idempotent."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import secrets
import sys
import uuid

from tortoise.transactions import in_transaction

from service.passwords import hash_password
from service.platform.database import close_database, open_database

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


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label:<14} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def seed_demo(settings, *, students: int = 20, per_student: int = 25) -> None:
    students, per_student = max(1, min(students, 100_000)), max(0, min(per_student, 1000))
    password = "demo-" + secrets.token_urlsafe(9)
    rng = random.Random(42)
    await open_database(settings)
    try:
        async with in_transaction() as conn:
            known = {r["email"] for r in await conn.execute_query_dict(
                "SELECT email FROM users WHERE email LIKE 'demo-student-%@example.org'")}
        emails = [f"demo-student-{i:05d}@example.org" for i in range(1, students + 1)]
        new = [e for e in emails if e not in known]
        hashes = []
        for start in range(0, len(new), 8):
            hashes += await asyncio.gather(*(hash_password(password, settings.bcrypt_rounds)
                                             for _ in new[start:start + 8]))
            _progress("students", len(hashes), len(new))
        if new:
            async with in_transaction() as conn:
                await conn.execute_query(
                    "INSERT INTO users (id, email, password_hash, full_name) SELECT * FROM "
                    "unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) ON CONFLICT (email) DO NOTHING",
                    [[uuid.uuid4() for _ in new], new, hashes,
                     [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in new]])
        async with in_transaction() as conn:
            owners = await conn.execute_query_dict(
                "SELECT id, email FROM users WHERE email = ANY($1::text[]) ORDER BY email", [emails])
            types = {r["slug"]: r["category"] for r in await conn.execute_query_dict(
                "SELECT slug, category FROM achievement_types WHERE is_active")}
        slugs = [s for s in TITLES if s in types] or list(types)
        today = dt.date.today()
        for done, owner in enumerate(owners, 1):
            local = random.Random(owner["email"])
            rows = []
            for n in range(per_student):
                slug = local.choice(slugs)
                title = local.choice(TITLES.get(slug, ["Achievement"])).format(place=local.choice(PLACES))
                rows.append((slug, f"{title} ({n + 1})", today - dt.timedelta(days=local.randint(0, 4 * 365))))
            async with in_transaction() as conn:
                await conn.execute_query(
                    "INSERT INTO achievements (id, owner_id, title, type, category, date, proof_url) "
                    "SELECT t.id, $1, t.title, t.type, t.category, t.date, t.url FROM unnest("
                    "$2::uuid[], $3::text[], $4::text[], $5::text[], $6::date[], $7::text[]) "
                    "AS t(id, title, type, category, date, url) "
                    "ON CONFLICT (owner_id, type, date, title_key) DO NOTHING",
                    [owner["id"], [uuid.uuid4() for _ in rows], [r[1] for r in rows], [r[0] for r in rows],
                     [types[r[0]] for r in rows], [r[2] for r in rows],
                     [f"https://example.org/proof/{uuid.uuid4().hex[:12]}" for _ in rows]])
            if done % 10 == 0 or done == len(owners):
                _progress("achievements", done, len(owners))
        if new:
            print(f"demo students: {new[0]} … {new[-1]} ({len(new)} new); password: {password}")
        else:
            print(f"demo students already existed ({len(owners)}); their password is unchanged")
    finally:
        await close_database()
