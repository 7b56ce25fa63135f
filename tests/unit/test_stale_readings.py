"""The API's last good answers while Redis is away."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from salespulse.api.errors import ApiError
from salespulse.api.reading import LastGood


async def test_answers_are_fresh_while_redis_answers_and_stale_copies_after():
    cache, values = LastGood(), iter([1, 2])

    async def read():
        return {"value": next(values)}

    async def down():
        raise RedisConnectionError("Connection refused")

    assert await cache.serve("q", read) == {"value": 1, "stale": False}
    assert await cache.serve("q", read) == {"value": 2, "stale": False}
    assert await cache.serve("q", down) == {"value": 2, "stale": True}


async def test_a_question_never_answered_gets_503_with_retry_after():
    async def down():
        raise OSError("no route")

    with pytest.raises(ApiError) as error:
        await LastGood().serve("q", down)
    assert (error.value.status, error.value.code, error.value.headers) == (503, "read_model_unavailable",
                                                                          {"Retry-After": "5"})


async def test_the_oldest_question_is_forgotten_past_the_size():
    cache = LastGood(size=2)

    async def read():
        return {"v": 0}

    async def down():
        raise OSError("down")

    for question in ("a", "b", "c"):
        await cache.serve(question, read)
    assert (await cache.serve("c", down))["stale"] and (await cache.serve("b", down))["stale"]
    with pytest.raises(ApiError):
        await cache.serve("a", down)


async def test_errors_other_than_redis_are_not_hidden():
    async def broken():
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await LastGood().serve("q", broken)
