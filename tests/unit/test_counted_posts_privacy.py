"""Hashtag posts that are only counted are stored without text; interactions keep theirs."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.domain import KIND_BRAND, KIND_BROADCAST, KIND_CHATTER, KIND_INTERACTION, Message
from monitor.store.pseudonyms import MessagePrivacy, Pseudonyms

PRIVACY = MessagePrivacy(pseudonyms=Pseudonyms(b"k" * 32))


def post(kind: str | None, *, brand: bool = False) -> Message:
    return Message(
        platform_id="1",
        thread_id="1",
        parent_id=None,
        author_id="109",
        author_name="ann@social.example",
        text="Good luck everyone #acmejobs",
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        seq=1,
        is_brand=brand,
        kind=kind,
        tags=("acmejobs",),
    )


def test_only_counted_posts_lose_their_text_and_every_consumer_is_a_pseudonym() -> None:
    stored = {
        kind: PRIVACY.apply(post(kind, brand=kind == KIND_BRAND))
        for kind in (None, KIND_BRAND, KIND_BROADCAST, KIND_CHATTER, KIND_INTERACTION)
    }
    assert {k: m.text for k, m in stored.items()} == {
        None: "Good luck everyone #acmejobs",  # a Page comment or forum post: an item
        KIND_BRAND: "Good luck everyone #acmejobs",
        KIND_BROADCAST: "",
        KIND_CHATTER: "",
        KIND_INTERACTION: "Good luck everyone #acmejobs",
    }
    consumers = [m for k, m in stored.items() if k != KIND_BRAND]
    assert all(m.author_name and m.author_name.startswith("p:") for m in consumers)
    # What the campaign report reads is kept: kind and tags.
    assert all(m.tags == ("acmejobs",) for m in stored.values())
    assert stored[KIND_CHATTER].kind == KIND_CHATTER
