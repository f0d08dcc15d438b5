"""The interaction rule (docs/campaigns.md) on a labelled sample of a job-market hashtag's week.

Each post carries the label a person gave it and, for interactions, the one way it qualifies
(a mention, a reply to the brand, a question mark, a question word), so that turning a switch
off is checked post by post: exactly those posts become chatter.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pytest

from monitor.config import InteractionConfig
from monitor.sources.interaction import (
    BRAND,
    BROADCAST,
    CHATTER,
    INTERACTION,
    InteractionRule,
    Post,
    Verdict,
)

BRAND_ACCOUNTS = ("@Acme", "anna_acme")  # the brand's account and a moderator's
PARTNERS = ("JobsNL", "@werkplein")
HASHTAGS = ("#JobMarket", "vacatures")
QUESTION_WORDS = ["hoe", "waar", "kan ik"]


@dataclass(frozen=True)
class Labelled:
    """A post, the label a person gave it, and for an interaction the way it qualifies."""

    label: str
    author: str
    text: str
    reply: bool = False  # a reply to a post of the brand's account or a moderator
    via: str | None = None  # mention | reply | question | word

    def post(self) -> Post:
        """The post as a source hands it to the rule: tags and the brand's mention from the text."""
        return Post(
            author=self.author,
            text=self.text,
            tags=frozenset(t.lower() for t in re.findall(r"#(\w+)", self.text)),
            mentions_brand=re.search(r"@acme(?![\w.@])", self.text, re.IGNORECASE) is not None,
            replies_to_brand=self.reply,
        )


SAMPLE = [
    # The brand's own account and its moderator: their posts answer, whatever they say.
    Labelled(BRAND, "acme", "Our job fair opens Thursday at 10 in hall 2 #JobMarket"),
    Labelled(BRAND, "acme", "Who's coming to the fair? Tell us below #JobMarket"),
    Labelled(BRAND, "Acme", "New vacancies in the app this week #vacatures"),
    Labelled(BRAND, "anna_acme", "@joost yes, students are welcome #jobmarket", reply=True),
    Labelled(BRAND, "@anna_acme", "Hoe laat? From 10 to 4 #jobmarket"),
    # Listed partners: vacancies and re-announcements, even when worded as questions.
    Labelled(BROADCAST, "jobsnl", "Vacancy: welder in Utrecht, 38 h #JobMarket"),
    Labelled(BROADCAST, "JobsNL", "Looking for work? Forklift drivers wanted #jobmarket"),
    Labelled(BROADCAST, "werkplein", "@acme shares our vacancies at the fair #JobMarket"),
    Labelled(BROADCAST, "werkplein", "Thanks @acme, see you Thursday", reply=True),
    Labelled(BROADCAST, "jobsnl", "Waar vind je werk? Vacature kok in Delft #vacatures"),
    # Mentions of the brand's account, with or without a question or a tag.
    Labelled(INTERACTION, "joost", "@acme is the fair open to students", via="mention"),
    Labelled(INTERACTION, "lisa", "@ACME my application got no reply since May", via="mention"),
    Labelled(INTERACTION, "ahmed", "Hey @acme, thanks for the tips #JobMarket", via="mention"),
    Labelled(INTERACTION, "noor", "@acme where is my parcel?", via="mention"),
    # Replies to the brand's posts.
    Labelled(INTERACTION, "sanne", "Thanks, see you there", reply=True, via="reply"),
    Labelled(INTERACTION, "tom", "Does the fair have parking?", reply=True, via="reply"),
    Labelled(INTERACTION, "eva", "Great, I'll bring my CV", reply=True, via="reply"),
    # Questions in a watched hashtag, in English: a question mark, full-width too.
    Labelled(
        INTERACTION, "fatima", "How do I sign up for the CV workshop? #jobmarket", via="question"
    ),
    Labelled(INTERACTION, "mark", "#JobMarket anyone know if entry is free?", via="question"),
    Labelled(
        INTERACTION, "yuki", "Is the fair accessible by wheelchair？ #jobmarket", via="question"
    ),
    Labelled(
        INTERACTION, "bas", "#JobMarket #Vacatures what time do the doors open?", via="question"
    ),
    # Questions by the configured question words (whole words, any case), no question mark.
    Labelled(INTERACTION, "pieter", "Waar kan ik me aanmelden #JobMarket", via="word"),
    Labelled(INTERACTION, "ilse", "HOE laat begint de banenmarkt #jobmarket", via="word"),
    Labelled(INTERACTION, "koen", "Vraagje: kan ik mijn cv laten checken #vacatures", via="word"),
    # Chatter: the rest of the hashtag.
    Labelled(CHATTER, "visitor1", "Great turnout at #jobmarket today!"),
    Labelled(CHATTER, "visitor2", "Heading to the #JobMarket with my sister"),
    Labelled(CHATTER, "visitor3", "Nieuwe schoenen voor de #jobmarket"),  # "hoe" inside a word
    Labelled(CHATTER, "visitor4", "Waarom zo druk bij de #jobmarket. Gezellig"),  # not "waar"
    Labelled(CHATTER, "visitor5", "Anyone going to the fair?"),  # no watched tag
    Labelled(CHATTER, "visitor6", "Is it raining in Utrecht? #weather"),  # an unwatched tag
    Labelled(CHATTER, "acme_support", "Answers on our site #jobmarket"),  # not a listed account
    Labelled(CHATTER, "randstadx", "Vacancy: cook in Leiden #jobmarket"),  # not a listed partner
    Labelled(CHATTER, "jan", "@acmecorp is hiring too #jobmarket"),  # another account
    Labelled(CHATTER, "jobsnl_fan", "Love the vacancies of jobsnl #vacatures"),
]


def rule(**switches: object) -> InteractionRule:
    """The rule of the sample's source, with some [sources.interaction] switches changed."""
    config = InteractionConfig.model_validate({"question_words": QUESTION_WORDS, **switches})
    return InteractionRule(
        brand_accounts=BRAND_ACCOUNTS, partners=PARTNERS, hashtags=HASHTAGS, config=config
    )


def labels(verdicts: list[Verdict]) -> Counter[str]:
    return Counter(v.kind for v in verdicts)


@pytest.mark.parametrize("labelled", SAMPLE, ids=lambda s: f"{s.label}:{s.text[:40]}")
def test_each_post_gets_its_label(labelled: Labelled) -> None:
    verdict = rule().classify(labelled.post())
    assert verdict.kind == labelled.label
    assert verdict.is_brand == (labelled.label == BRAND)


def test_the_whole_sample() -> None:
    assert len(SAMPLE) >= 30
    verdicts = [rule().classify(s.post()) for s in SAMPLE]
    assert labels(verdicts) == {BRAND: 5, BROADCAST: 5, INTERACTION: 14, CHATTER: 10}
    assert sum(s.via is not None for s in SAMPLE) == 14


def test_only_watched_tags_are_kept_lower_case_and_sorted() -> None:
    verdicts = {s.author: rule().classify(s.post()) for s in SAMPLE}
    assert verdicts["bas"].tags == ("jobmarket", "vacatures")
    assert verdicts["jobsnl"].tags == ("vacatures",)  # the last of jobsnl's posts
    assert verdicts["visitor6"].tags == ()  # #weather is not watched
    assert verdicts["noor"].tags == ()  # a mention needs no tag


@pytest.mark.parametrize(
    ("switches", "lost"),
    [
        ({"mentions": False}, {"mention"}),
        ({"replies": False}, {"reply"}),
        ({"questions": False}, {"question", "word"}),
        ({"question_words": []}, {"word"}),
        (
            {"mentions": False, "replies": False, "questions": False},
            {"mention", "reply", "question", "word"},
        ),
    ],
    ids=["mentions", "replies", "questions", "question_words", "all"],
)
def test_a_switch_turned_off_makes_exactly_its_posts_chatter(
    switches: dict[str, object], lost: set[str]
) -> None:
    verdicts = [rule(**switches).classify(s.post()) for s in SAMPLE]
    expected = [CHATTER if s.via in lost else s.label for s in SAMPLE]
    assert [v.kind for v in verdicts] == expected
    # The brand's and the partners' posts never depend on the switches.
    assert labels(verdicts)[BRAND] == 5 and labels(verdicts)[BROADCAST] == 5


def test_a_partner_s_question_is_a_broadcast_and_the_brand_s_question_is_the_brand_s() -> None:
    partner = Post(
        author="@JobsNL",
        text="Are you our next welder? #JobMarket",
        tags=frozenset({"jobmarket"}),
        mentions_brand=True,
        replies_to_brand=True,
    )
    assert rule().classify(partner).kind == BROADCAST
    brand = Post(
        author="ACME",
        text="@acme who's coming? #jobmarket",
        tags=frozenset({"jobmarket"}),
        mentions_brand=True,
        replies_to_brand=True,
    )
    assert rule().classify(brand).kind == BRAND
