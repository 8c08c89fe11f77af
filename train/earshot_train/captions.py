"""Caption generation from labels, and the synonym table behind "source accuracy".

Every sound class has a canonical *source* name (``"dog"``, ``"rain"``), a few present-tense
clauses (``"a dog barks"``) and noun phrases (``"a dog barking"``) that templates combine into
lower-case, AudioCaps-like captions: ``"a dog barks while rain falls"``, ``"a rooster crows and then
a baby cries"``, ``"a woman speaks over music"``.

Source accuracy (:func:`names_source`, :func:`source_accuracy`): a caption names a source when one of
the source's synonyms occurs in it as whole words; a clip counts as correct when *every* one of its
sources is named (both events of a two-event mixture).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SoundClass:
    name: str  #: class id, e.g. "dog_bark"
    source: str  #: canonical source name, e.g. "dog"
    clauses: tuple[str, ...]  #: full clauses: "a dog barks"
    nominals: tuple[str, ...]  #: noun phrases: "a dog barking", "barking"
    bed: bool = False  #: a continuous background (rain, wind, music) rather than an event


def _c(name, source, clauses, nominals, bed=False) -> SoundClass:
    return SoundClass(name, source, tuple(clauses), tuple(nominals), bed)


#: All classes used by the corpus (ESC-10, 0 A.D., English speech, and the synthetic test classes).
CLASSES: dict[str, SoundClass] = {
    c.name: c
    for c in [
        # --- ESC-10
        _c(
            "dog_bark",
            "dog",
            ["a dog barks", "a dog is barking", "a dog barks several times", "a dog barks loudly"],
            ["a dog barking", "barking", "a barking dog"],
        ),
        _c(
            "rain",
            "rain",
            ["rain falls", "rain pours down", "it is raining", "rain falls steadily"],
            ["rain falling", "rainfall", "the sound of rain", "heavy rain"],
        ),
        _c(
            "sea_waves",
            "waves",
            ["waves crash", "ocean waves crash on the shore", "waves break on a beach", "the sea roars"],
            ["waves crashing", "ocean waves", "the sound of waves"],
        ),
        _c(
            "baby_cry",
            "baby",
            ["a baby cries", "a baby is crying", "an infant cries loudly", "a baby wails"],
            ["a baby crying", "an infant crying", "a crying baby"],
        ),
        _c(
            "clock_tick",
            "clock",
            ["a clock ticks", "a clock is ticking", "a clock ticks steadily"],
            ["a clock ticking", "ticking", "the ticking of a clock"],
        ),
        _c(
            "sneeze",
            "sneeze",
            ["a person sneezes", "someone sneezes", "a man sneezes", "a person sneezes loudly"],
            ["a person sneezing", "sneezing", "a sneeze"],
        ),
        _c(
            "helicopter",
            "helicopter",
            ["a helicopter flies", "a helicopter flies overhead", "a helicopter hovers", "rotor blades whir"],
            ["a helicopter flying", "a helicopter", "the whir of a helicopter"],
        ),
        _c(
            "chainsaw",
            "chainsaw",
            ["a chainsaw runs", "a chainsaw cuts wood", "a chainsaw revs", "a chainsaw engine buzzes"],
            ["a chainsaw running", "a chainsaw", "a chainsaw cutting wood"],
        ),
        _c(
            "rooster",
            "rooster",
            ["a rooster crows", "a rooster is crowing", "a rooster crows loudly", "a cock crows"],
            ["a rooster crowing", "crowing", "a crowing rooster"],
        ),
        _c(
            "fire_crackling",
            "fire",
            ["a fire crackles", "wood burns and crackles", "a fire is crackling", "flames crackle"],
            ["a fire crackling", "crackling fire", "the crackle of a fire"],
        ),
        # --- 0 A.D. events
        _c(
            "cow",
            "cow",
            ["a cow moos", "cattle moo", "a cow is mooing", "a cow moos loudly"],
            ["a cow mooing", "mooing", "cattle mooing"],
        ),
        _c(
            "chicken",
            "chicken",
            ["a chicken clucks", "chickens cluck", "a hen clucks", "a chicken is clucking"],
            ["a chicken clucking", "clucking", "chickens clucking"],
        ),
        _c(
            "elephant",
            "elephant",
            ["an elephant trumpets", "an elephant roars", "an elephant trumpets loudly"],
            ["an elephant trumpeting", "an elephant"],
        ),
        _c(
            "horse",
            "horse",
            ["a horse neighs", "a horse whinnies", "a horse snorts and neighs"],
            ["a horse neighing", "a horse whinnying", "neighing"],
        ),
        _c(
            "horse_steps",
            "horse",
            ["a horse trots", "hooves clop on the ground", "a horse walks by"],
            ["a horse trotting", "hooves clopping", "the clop of hooves"],
        ),
        _c(
            "goat",
            "goat",
            ["a goat bleats", "a goat is bleating", "a goat bleats loudly"],
            ["a goat bleating", "goats bleating"],
        ),
        _c(
            "pig",
            "pig",
            ["a pig squeals", "a pig grunts", "a pig oinks", "a pig squeals loudly"],
            ["a pig squealing", "a pig grunting", "pigs squealing"],
        ),
        _c(
            "sheep",
            "sheep",
            ["a sheep bleats", "sheep baa", "a sheep is bleating"],
            ["a sheep bleating", "sheep bleating"],
        ),
        _c(
            "lion",
            "lion",
            ["a lion roars", "a lion growls", "a big cat roars"],
            ["a lion roaring", "a lion growling", "a roaring lion"],
        ),
        _c(
            "footsteps",
            "footsteps",
            ["a person walks", "footsteps approach", "someone walks on the ground", "a person runs by"],
            ["footsteps", "a person walking", "the sound of footsteps"],
        ),
        _c(
            "saw",
            "saw",
            ["someone saws wood", "a hand saw cuts wood", "a saw scrapes through wood"],
            ["a saw cutting wood", "sawing", "someone sawing wood"],
        ),
        _c(
            "hammer",
            "hammer",
            ["a hammer strikes", "someone hammers", "a hammer taps on wood", "someone is hammering"],
            ["hammering", "a hammer striking", "someone hammering"],
        ),
        _c(
            "axe",
            "axe",
            ["someone chops wood", "an axe chops wood", "an axe strikes a tree"],
            ["wood being chopped", "chopping", "an axe chopping wood"],
        ),
        _c(
            "mining",
            "pickaxe",
            ["a pickaxe strikes rock", "metal clanks against stone", "someone hits rocks with a pickaxe"],
            ["a pickaxe striking rock", "clanking metal", "rocks being struck"],
        ),
        _c(
            "digging",
            "digging",
            ["someone digs in the dirt", "a hoe scrapes the soil", "someone is digging"],
            ["digging", "someone digging", "a hoe scraping dirt"],
        ),
        _c(
            "leaves",
            "leaves",
            ["leaves rustle", "someone rustles through leaves", "bushes rustle"],
            ["leaves rustling", "rustling leaves", "rustling"],
        ),
        _c(
            "man_voice",
            "man",
            ["a man speaks", "a man shouts", "a man speaks in a foreign language", "a man calls out"],
            ["a man speaking", "a man shouting", "a male voice"],
        ),
        _c(
            "woman_voice",
            "woman",
            ["a woman speaks", "a woman calls out", "a woman speaks in a foreign language", "a woman shouts"],
            ["a woman speaking", "a woman calling out", "a female voice"],
        ),
        _c(
            "man_scream",
            "man",
            ["a man screams", "a man groans in pain", "a man yells", "a man cries out"],
            ["a man screaming", "a man groaning", "a man yelling"],
        ),
        _c(
            "woman_scream",
            "woman",
            ["a woman screams", "a woman cries out", "a woman shrieks"],
            ["a woman screaming", "a woman crying out", "a screaming woman"],
        ),
        _c(
            "thunder",
            "thunder",
            ["thunder rumbles", "thunder roars in the distance", "thunder cracks loudly"],
            ["thunder rumbling", "thunder", "a clap of thunder"],
        ),
        # --- English speech
        _c(
            "speech",
            "woman",
            ["a woman speaks", "a woman is talking", "a woman talks", "a female voice speaks"],
            ["a woman speaking", "a woman talking", "a female voice"],
        ),
        # --- 0 A.D. ambience beds
        _c(
            "rain_bed",
            "rain",
            ["rain falls", "rain pours", "it rains steadily", "rain patters"],
            ["rain", "the sound of rain", "falling rain", "rainfall"],
            bed=True,
        ),
        _c(
            "wind_bed",
            "wind",
            ["wind blows", "a strong wind howls", "the wind gusts", "wind blows hard"],
            ["wind", "the wind blowing", "howling wind", "wind noise"],
            bed=True,
        ),
        _c(
            "water_bed",
            "water",
            ["water flows", "a stream trickles", "water rushes by", "a river flows"],
            ["flowing water", "a stream", "running water", "the sound of a river"],
            bed=True,
        ),
        _c(
            "waves_bed",
            "waves",
            ["waves crash", "waves wash onto the shore", "the sea splashes"],
            ["crashing waves", "the sound of waves", "ocean waves"],
            bed=True,
        ),
        _c(
            "birds_bed",
            "birds",
            ["birds chirp", "birds sing", "birds are chirping", "birds tweet"],
            ["birds chirping", "birdsong", "chirping birds"],
            bed=True,
        ),
        _c(
            "crowd_bed",
            "crowd",
            ["people talk in the distance", "a crowd murmurs", "people chatter"],
            ["a crowd talking", "people chattering", "crowd noise", "distant voices"],
            bed=True,
        ),
        _c(
            "music",
            "music",
            ["music plays", "a song plays", "music is playing"],
            ["music", "music playing", "a song", "background music"],
            bed=True,
        ),
        # --- synthetic (tiny test corpus)
        _c(
            "tone_beep",
            "beep",
            ["a device beeps", "a beep sounds", "an electronic beep repeats"],
            ["beeping", "a beep", "electronic beeping"],
        ),
        _c(
            "tone_chirp",
            "whistle",
            ["someone whistles", "a whistle blows", "a high whistle rises"],
            ["whistling", "a whistle", "a rising whistle"],
        ),
        _c(
            "noise_bed",
            "static",
            ["static hisses", "white noise hisses", "a radio hisses"],
            ["static", "hissing static", "white noise"],
            bed=True,
        ),
        _c(
            "hum_bed",
            "hum",
            ["an engine hums", "a machine hums", "a motor drones"],
            ["a low hum", "humming", "an engine humming"],
            bed=True,
        ),
    ]
}

#: Words (whole-word, lower-case) that count as naming each canonical source.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "dog": ("dog", "dogs", "puppy", "puppies", "bark", "barks", "barking", "woof", "hound"),
    "rain": ("rain", "rains", "raining", "rainfall", "raindrops", "drizzle", "downpour", "rainstorm"),
    "waves": ("wave", "waves", "ocean", "sea", "surf", "shore", "tide", "seashore"),
    "baby": ("baby", "babies", "infant", "infants", "toddler", "child", "newborn"),
    "clock": ("clock", "clocks", "tick", "ticks", "ticking", "tock", "tick-tock"),
    "sneeze": ("sneeze", "sneezes", "sneezing", "sneezed"),
    "helicopter": ("helicopter", "helicopters", "chopper", "rotor", "rotors"),
    "chainsaw": ("chainsaw", "chainsaws", "chain saw"),
    "rooster": ("rooster", "roosters", "cock", "crow", "crows", "crowing", "cockerel", "cock-a-doodle-doo"),
    "fire": ("fire", "fires", "crackle", "crackles", "crackling", "flames", "flame", "campfire", "burning"),
    "cow": ("cow", "cows", "cattle", "moo", "moos", "mooing", "bull", "calf"),
    "chicken": ("chicken", "chickens", "hen", "hens", "cluck", "clucks", "clucking"),
    "elephant": ("elephant", "elephants", "trumpets", "trumpeting"),
    "horse": ("horse", "horses", "neigh", "neighs", "neighing", "whinny", "whinnies", "hooves", "trots"),
    "goat": ("goat", "goats"),
    "pig": ("pig", "pigs", "oink", "oinks", "oinking", "hog", "swine", "piglet"),
    "sheep": ("sheep", "lamb", "lambs", "baa", "baas"),
    "lion": ("lion", "lions", "big cat"),
    "footsteps": ("footsteps", "footstep", "steps", "walks", "walking", "walk", "runs", "running", "stomps"),
    "saw": ("saw", "saws", "sawing", "handsaw"),
    "hammer": ("hammer", "hammers", "hammering", "hammered", "mallet"),
    "axe": ("axe", "ax", "chops", "chopping", "chop", "chopped", "hatchet"),
    "pickaxe": ("pickaxe", "pick", "rock", "rocks", "stone", "stones", "mining", "clanks", "clanking"),
    "digging": ("dig", "digs", "digging", "hoe", "shovel", "shoveling", "soil", "dirt"),
    "leaves": ("leaves", "leaf", "rustle", "rustles", "rustling", "bushes", "foliage"),
    "man": ("man", "men", "male", "guy", "boy", "gentleman"),
    "woman": ("woman", "women", "female", "lady", "girl"),
    "thunder": ("thunder", "thunderstorm", "thunders", "thundering", "thunderclap"),
    "wind": ("wind", "winds", "windy", "gust", "gusts", "gusting", "breeze", "howling"),
    "water": ("water", "stream", "river", "brook", "creek", "waterfall", "flowing", "trickles", "trickling"),
    "birds": ("bird", "birds", "chirp", "chirps", "chirping", "tweet", "tweeting", "birdsong", "songbirds"),
    "crowd": ("crowd", "people", "chatter", "chattering", "murmurs", "murmuring", "voices"),
    "music": ("music", "song", "songs", "melody", "instrumental", "tune"),
    "beep": ("beep", "beeps", "beeping", "bleep", "beeper"),
    "whistle": ("whistle", "whistles", "whistling"),
    "static": ("static", "hiss", "hisses", "hissing", "white noise"),
    "hum": ("hum", "hums", "humming", "drone", "drones", "droning", "engine", "motor", "machine"),
}

_PATTERNS: dict[str, re.Pattern[str]] = {
    src: re.compile(r"(?<![a-z'-])(?:" + "|".join(re.escape(w) for w in words) + r")(?![a-z'-])")
    for src, words in SYNONYMS.items()
}


def names_source(caption: str, source: str) -> bool:
    """True when ``caption`` names ``source`` (a canonical name) by one of its synonyms, as whole words."""
    try:
        pat = _PATTERNS[source]
    except KeyError:
        raise ValueError(f"unknown source {source!r}; known: {sorted(SYNONYMS)}") from None
    return pat.search(caption.lower()) is not None


def names_all_sources(caption: str, sources: Iterable[str]) -> bool:
    """True when every source is named (a two-event mixture needs both)."""
    srcs = list(sources)
    return bool(srcs) and all(names_source(caption, s) for s in srcs)


def source_accuracy(preds: Mapping[str, str], sources: Mapping[str, Sequence[str]]) -> float:
    """Share of clips (keys of ``preds``) whose predicted caption names all of the clip's sources."""
    ids = [i for i in preds if sources.get(i)]
    if not ids:
        raise ValueError("source_accuracy: no clip with known sources")
    return sum(names_all_sources(preds[i], sources[i]) for i in ids) / len(ids)


# ------------------------------------------------------------------------------------------- templates
SINGLE_T = ("{a}", "{a}", "{a}", "{a} nearby", "{a} in the distance", "{a} outdoors")
BED_T = (
    "{e} while {b}",
    "{b} while {e}",
    "{e} as {b}",
    "{b} as {e}",
    "{e} over {bn}",
    "{e} with {bn} in the background",
    "{b} and {e}",
    "{e} and {b}",
    "{bn} and {en}",
)
MUSIC_T = (
    "{e} over music",
    "{e} while music plays",
    "music plays as {e}",
    "{e} with music in the background",
    "{e} over background music",
)
OVERLAP_T = (
    "{a} while {b}",
    "{a} and {b}",
    "{a} as {b}",
    "{a} and {b} at the same time",
    "{an} and {bn}",
    "{b} while {a}",
)
SEQUENCE_T = (
    "{a} and then {b}",
    "{a} followed by {bn}",
    "{a} then {b}",
    "{an} followed by {bn}",
    "{a} before {b}",
    "first {a} and then {b}",
    "{a} and {b} afterwards",
)


def _one(rng: random.Random, kind: str, classes: Sequence[SoundClass]) -> str:
    pick = rng.choice
    if kind == "single":
        (a,) = classes
        return pick(SINGLE_T).format(a=pick(a.clauses))
    if kind == "bed":
        e, b = classes
        if b.name == "music":
            return pick(MUSIC_T).format(e=pick(e.clauses))
        return pick(BED_T).format(
            e=pick(e.clauses), b=pick(b.clauses), bn=pick(b.nominals), en=pick(e.nominals)
        )
    if kind == "overlap":
        a, b = classes
        return pick(OVERLAP_T).format(
            a=pick(a.clauses), b=pick(b.clauses), an=pick(a.nominals), bn=pick(b.nominals)
        )
    if kind == "sequence":
        a, b = classes
        return pick(SEQUENCE_T).format(
            a=pick(a.clauses), b=pick(b.clauses), an=pick(a.nominals), bn=pick(b.nominals)
        )
    raise ValueError(f"unknown clip kind {kind!r}")


def make_captions(rng: random.Random, kind: str, class_names: Sequence[str], n: int = 5) -> list[str]:
    """``n`` distinct (when possible) lower-case captions for a clip of ``kind`` made of ``class_names``.

    ``kind``: ``single`` (one class), ``bed`` (event, bed), ``overlap`` (a, b at once), ``sequence``
    (a then b).
    """
    classes = [CLASSES[c] for c in class_names]
    want = {"single": 1, "bed": 2, "overlap": 2, "sequence": 2}
    if kind not in want:
        raise ValueError(f"unknown clip kind {kind!r}")
    if len(classes) != want[kind]:
        raise ValueError(f"{kind} clip needs {want[kind]} classes, got {list(class_names)}")
    out: list[str] = []
    for _ in range(20 * n):
        c = " ".join(_one(rng, kind, classes).split())
        if c not in out:
            out.append(c)
        if len(out) == n:
            break
    while len(out) < n:  # too few distinct phrasings: repeat (still valid references)
        out.append(out[len(out) % max(1, len(out))])
    return out
