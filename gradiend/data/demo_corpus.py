"""A generated English corpus for the offline demo and the tests (there is no network here).

Named people of both genders referred to later by he/she/his/her/him, plural subjects with
they/them/their (so number matters, not just a pronoun slot), and neutral sentences without any
pronoun. Deterministic for a seed; no global random state is touched.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

from gradiend.util.io import PathLike, atomic_path

DEMO_PRONOUNS: tuple[str, ...] = ("he", "she", "his", "her", "him", "they", "them", "their")

FEMALE_NAMES: tuple[str, ...] = (
    "Maria", "Anna", "Emma", "Olivia", "Sophia", "Isabella", "Mia", "Charlotte", "Amelia", "Harper",
    "Evelyn", "Abigail", "Emily", "Elizabeth", "Sofia", "Ella", "Chloe", "Victoria", "Lily", "Hannah",
    "Zoe", "Nora", "Lucy", "Alice", "Sarah", "Laura", "Julia", "Rachel", "Rebecca", "Linda", "Susan",
    "Karen", "Nancy", "Lisa", "Helen", "Sandra", "Donna", "Carol", "Ruth", "Sharon", "Michelle",
    "Kimberly", "Jessica", "Ashley", "Amanda", "Melissa", "Stephanie", "Nicole", "Heather", "Claire",
    "Fiona", "Ingrid", "Greta", "Leah", "Naomi", "Priya", "Aisha", "Fatima", "Mei", "Yuki", "Elena",
    "Ines", "Lena", "Clara", "Paula", "Diana", "Irene", "Monica", "Vera", "Wendy",
)
MALE_NAMES: tuple[str, ...] = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
    "Daniel", "Matthew", "Anthony", "Steven", "Paul", "Andrew", "Joshua", "Kevin", "Brian", "George",
    "Edward", "Ronald", "Timothy", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Eric", "Jonathan",
    "Stephen", "Larry", "Justin", "Scott", "Frank", "Benjamin", "Gregory", "Samuel", "Patrick",
    "Alexander", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Henry", "Peter", "Adam", "Nathan",
    "Oliver", "Lucas", "Noah", "Liam", "Ethan", "Leo", "Hugo", "Felix", "Omar", "Ahmed", "Ravi",
    "Kenji", "Carlos", "Diego", "Marco", "Lars", "Jonas", "Tobias", "Victor", "Oscar", "Simon",
)
PLURAL_SUBJECTS: tuple[str, ...] = (
    "the students", "the children", "my parents", "our neighbours", "the players", "the nurses",
    "the engineers", "the teachers", "the workers", "the tourists", "the musicians", "the farmers",
    "the volunteers", "the doctors", "the kids", "my cousins", "the twins", "the guests",
    "the scientists", "the runners", "the villagers", "the drivers", "the cooks", "my friends",
)

# (past tense, base form, objects that fit the verb)
_ACTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("finished", "finish", ("the report", "the homework", "the essay", "the puzzle", "the project")),
    ("cleaned", "clean", ("the kitchen", "the garage", "the windows", "the car", "the bathroom")),
    ("painted", "paint", ("the fence", "the door", "the bedroom", "a picture")),
    ("fixed", "fix", ("the bike", "the sink", "the roof", "the radio", "the computer")),
    ("cooked", "cook", ("dinner", "the soup", "a curry", "breakfast", "the pasta")),
    ("baked", "bake", ("a cake", "bread", "cookies", "a pie")),
    ("read", "read", ("the newspaper", "a novel", "the letter", "the manual")),
    ("wrote", "write", ("a letter", "a poem", "an email", "the speech", "a story")),
    ("bought", "buy", ("groceries", "a new coat", "flowers", "tickets", "a lamp")),
    ("watched", "watch", ("a movie", "the game", "the news", "the sunset")),
    ("planted", "plant", ("tomatoes", "a tree", "some herbs", "tulips")),
    ("washed", "wash", ("the dishes", "the dog", "the clothes")),
    ("visited", "visit", ("the museum", "the market", "the old castle", "the zoo")),
    ("repaired", "repair", ("the boat", "the old clock", "the lamp")),
    ("opened", "open", ("the window", "the package", "a bank account", "the shop")),
    ("packed", "pack", ("the suitcase", "a lunch", "the boxes")),
    ("played", "play", ("the piano", "chess", "football", "the guitar", "tennis")),
    ("sold", "sell", ("the old car", "some books", "the house")),
    ("carried", "carry", ("the boxes", "the groceries", "the chairs")),
    ("studied", "study", ("the map", "history", "the contract", "chemistry")),
    ("answered", "answer", ("the phone", "the questions", "the email")),
    ("organized", "organize", ("the party", "the files", "the meeting", "the trip")),
)

# Fillers of the other slots, by slot name.
_SLOT_FILLERS: dict[str, tuple[str, ...]] = {
    "place": (
        "the library", "the park", "the office", "the station", "the beach", "the market", "the hospital",
        "the school", "the gym", "the bakery", "the museum", "the garden", "the cafe", "the airport",
        "the harbour", "the cinema", "the farm", "the lake", "the church", "the hotel", "the bank",
        "the stadium",
    ),
    "time": (
        "in the morning", "in the evening", "after lunch", "on Monday", "on Friday", "last week",
        "yesterday", "at noon", "before dawn", "during the storm", "over the weekend", "this afternoon",
        "at midnight", "in the spring", "after work",
    ),
    "move": ("walked to", "drove to", "ran to", "went to", "hurried to", "returned to", "cycled to"),
    "adj": (
        "tired", "happy", "nervous", "proud", "hungry", "excited", "calm", "worried", "sleepy",
        "cheerful", "angry", "relieved", "busy", "bored", "curious",
    ),
    "relative": (
        "sister", "brother", "mother", "father", "friend", "neighbour", "teacher", "boss", "cousin",
        "grandmother", "grandfather", "coach", "doctor", "colleague", "uncle", "aunt",
    ),
    "relatives": ("friends", "teachers", "neighbours", "parents", "coaches", "grandparents"),
    "item": ("keys", "wallet", "phone", "umbrella", "glasses", "notebook", "bag", "ticket", "jacket", "hat"),
    "items": ("keys", "tickets", "bags", "phones", "maps", "umbrellas"),
    "gift": ("book", "scarf", "watch", "card", "plant", "mug"),
    "role": ("manager", "librarian", "driver", "waiter", "pilot", "clerk", "mayor", "gardener"),
    "vehicle": ("train", "bus", "ferry", "truck", "plane"),
    "event": ("concert", "meeting", "wedding", "party", "match", "lecture"),
    "state": ("quiet", "crowded", "empty", "closed", "noisy", "warm"),
    "animal": ("cat", "dog", "fox", "horse", "bird", "goat"),
    "group": PLURAL_SUBJECTS,
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    # Gendered shapes: a name first, pronouns after it (same clause, next clause, or next sentence).
    "gendered": (
        "{name} {action} before {he} went home.",
        "{name} {action} {time}, and then {he} {action2}.",
        "{name} was {adj} because {he} had lost {his} {item}.",
        "{name} called {his} {relative} when {he} arrived at {place}.",
        "{name} stayed at {place} {time}. {He} {action}.",
        "When {name} got to {place}, {he} {action}.",
        "{name} said that {he} would {action_base} {time}.",
        "{name} asked {his} {relative} to help {him} {action_base}.",
        "After {name} {action}, {he} {move} {place}.",
        "{name} forgot {his} {item} at {place}, so {he} went back.",
        "{name} {move} {place} {time} because {he} wanted to {action_base}.",
        "Everyone thanked {name} because {he} {action}.",
        "{name} smiled when {his} {relative} gave {him} a {gift}.",
        "{name} was {adj}. {He} {action} and {move} {place}.",
        "Yesterday {name} {action}, but {he} did not {action_base}.",
        "{name} told {his} {relative} that {he} was {adj}.",
        "{name} could not find {his} {item}, so {he} {action}.",
        "{name} met {his} {relative} at {place}, and {he} {action}.",
        "Although {name} was {adj}, {he} {action} {time}.",
        "{name} {move} {place}, where {he} {action}.",
        "{name} hoped that {his} {relative} would visit {him} {time}.",
        "{name} took {his} {item} and {move} {place}. Later {he} {action}.",
        "{name} visited {his} {relatives} because {he} missed them.",
        "{name} was at {place} {time}, and {his} {relative} asked {him} to {action_base}.",
        "The {role} thanked {name} after {he} {action}.",
        "{name} {action}. Then {he} {action2} {time}.",
    ),
    "plural": (
        "{group} {action} before they went home.",
        "{group} were {adj} because they had lost their {items}.",
        "{group} {move} {place} {time}. They {action}.",
        "When {group} arrived at {place}, they {action}.",
        "{group} said that they would {action_base} {time}.",
        "{group} asked their {relatives} to help them {action_base}.",
        "After {group} {action}, they {move} {place}.",
        "Everyone thanked {group} because they {action}.",
        "{group} met their {relatives} at {place}, and they {action} together.",
        "{group} could not find their {items}, so they {action}.",
    ),
    "neutral": (
        "{group} {action} {time}.",
        "{name} {action} {time}.",
        "{name} {move} {place} {time}.",
        "The {vehicle} arrived at {place} {time}.",
        "It rained {time}, so the {event} moved to {place}.",
        "{place} was {state} {time}.",
        "{name} and {name2} {action} {time}.",
        "A {animal} slept near {place} {time}.",
        "The {role} {action} at {place}.",
        "Nobody {action} {time}.",
        "{group} {move} {place} and {action}.",
    ),
}
# Share of each kind of sentence; female and male split the gendered share evenly.
_KIND_WEIGHTS = (("female", 0.25), ("male", 0.25), ("plural", 0.25), ("neutral", 0.25))
_PRONOUN_FORMS = {
    "female": {"he": "she", "He": "She", "him": "her", "his": "her"},
    "male": {"he": "he", "He": "He", "him": "him", "his": "his"},
}


@dataclass(frozen=True)
class DemoSentence:
    """One generated sentence with how it was made (kind: female / male / plural / neutral)."""

    text: str
    kind: str
    template: str


def _fill_slot(slot: str, kind: str, rng: random.Random) -> str:
    """Draw one filler for a template slot; pronoun slots follow the sentence's gender."""
    if slot in _PRONOUN_FORMS["male"]:
        return _PRONOUN_FORMS[kind][slot]
    base = slot.rstrip("0123456789")
    if base == "name":
        return rng.choice({"female": FEMALE_NAMES, "male": MALE_NAMES}.get(kind, FEMALE_NAMES + MALE_NAMES))
    if base in ("action", "action_base"):
        past, bare, objects = rng.choice(_ACTIONS)
        return f"{past if base == 'action' else bare} {rng.choice(objects)}"
    if base in _SLOT_FILLERS:
        return rng.choice(_SLOT_FILLERS[base])
    raise KeyError(f"demo corpus template uses unknown slot {slot!r}")


def _render(template: str, kind: str, rng: random.Random) -> str:
    slots = dict.fromkeys(field for _, field, _, _ in string.Formatter().parse(template) if field)
    text = template.format(**{slot: _fill_slot(slot, kind, rng) for slot in slots})
    return text[0].upper() + text[1:]


def generate_labelled_corpus(n_sentences: int = 6000, seed: int = 0) -> list[DemoSentence]:
    """Generate ``n_sentences`` sentences with their kind and template (deterministic per seed)."""
    if n_sentences < 0:
        raise ValueError(f"n_sentences must be >= 0, got {n_sentences}")
    rng = random.Random(seed)
    kinds, weights = zip(*_KIND_WEIGHTS)
    sentences = []
    for _ in range(n_sentences):
        kind = rng.choices(kinds, weights)[0]
        template = rng.choice(TEMPLATES["gendered" if kind in _PRONOUN_FORMS else kind])
        sentences.append(DemoSentence(_render(template, kind, rng), kind, template))
    return sentences


def generate_demo_corpus(n_sentences: int = 6000, seed: int = 0) -> list[str]:
    """Generate the demo corpus as plain sentences (deterministic per seed)."""
    return [sentence.text for sentence in generate_labelled_corpus(n_sentences, seed)]


def write_demo_corpus(path: PathLike, n_sentences: int = 6000, seed: int = 0) -> Path:
    """Write the demo corpus to ``path``, one sentence per line, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(generate_demo_corpus(n_sentences, seed)) + "\n", encoding="utf-8")
    return Path(path)
