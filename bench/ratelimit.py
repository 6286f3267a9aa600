"""Rate-limit overhead per request with Redis: the same admin request through an app with
the limiter on (Redis storage: slowapi's per-client default limit plus the per-key admin
limit) and through an app with it off, interleaved in one run; plus the limiter check
alone. Target: overhead <= 1 ms at p99.

    .venv/bin/python bench/ratelimit.py [redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.main import create_app
from app.security import api_keys
from app.security.api_keys import Role
from app.security.ratelimit import KeyLimit
from bench.stats import report

REDIS_URL = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
REQUESTS = 2000
TARGET_MS = 1.0


def main() -> None:
    prefix = f"bench-rl-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as folder:
        base = Settings(
            _env_file=None,
            database_url=f"sqlite:///{folder}/bench.db",
            redis_url=REDIS_URL,
            rate_limit_key_prefix=prefix,
            rate_limit_default="10000000/minute",
            rate_limit_admin="10000000/minute",
        )
        engine = make_engine(base)
        upgrade_to_head(engine)
        with make_session_factory(engine)() as session:
            key = api_keys.create_key(session, name="bench", role=Role.ADMIN).plaintext
            session.commit()
        factory = make_session_factory(engine)
        limited = create_app(base, session_factory=factory)
        free = create_app(
            base.model_copy(update={"rate_limit_enabled": False}), session_factory=factory
        )
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with TestClient(limited) as on, TestClient(free) as off:
                samples: dict[str, list[float]] = {"on": [], "off": []}
                for i in range(REQUESTS + 100):
                    for name, client in (
                        (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on))
                    ):
                        begin = time.perf_counter()
                        response = client.get("/admin/v1/users?limit=1", headers=headers)
                        elapsed = (time.perf_counter() - begin) * 1000
                        assert response.status_code == 200, response.text
                        if i >= 100:
                            samples[name].append(elapsed)
                off_stats = report("admin GET, limiter off (baseline)", samples["off"])
                on_stats = report("admin GET, limiter on (Redis)", samples["on"])
                print(
                    f"{'':<44} ratio on/off: p50 x{on_stats['p50'] / off_stats['p50']:.2f}"
                    f"  p99 x{on_stats['p99'] / off_stats['p99']:.2f}"
                )
                print(
                    f"{'':<44} overhead: p50 {on_stats['p50'] - off_stats['p50']:+.3f} ms"
                    f"  p99 {on_stats['p99'] - off_stats['p99']:+.3f} ms"
                )
            # The check alone: what each request pays for one limit in Redis.
            limit = KeyLimit(limited.state.limiter, base.rate_limit_admin, "admin")
            checks = []
            for i in range(REQUESTS + 100):
                begin = time.perf_counter()
                assert limit.check(f"key_{i % 50}").allowed
                if i >= 100:
                    checks.append((time.perf_counter() - begin) * 1000)
            check_stats = report("one per-key check in Redis", checks)
            per_request = check_stats["p99"] * 2
            end_to_end = on_stats["p99"] - off_stats["p99"]
            verdict = "OK" if per_request <= TARGET_MS else "OVER TARGET"
            print(
                f"limiter cost per admin request (2 checks) at p99: {per_request:.3f} ms "
                f"(target <= {TARGET_MS} ms): {verdict}"
            )
            print(f"end-to-end p99 difference on - off: {end_to_end:+.3f} ms")
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            removed = sum(client.delete(k) for k in client.scan_iter(match=f"*{prefix}*"))
            client.close()
            engine.dispose()
            print(f"removed {removed} Redis keys with prefix {prefix}")


if __name__ == "__main__":
    main()
