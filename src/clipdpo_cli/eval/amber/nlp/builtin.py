"""The built-in, download-free noun extractor: a stand-in for NLTK's word_tokenize + pos_tag +
WordNetLemmatizer, specialised to what AMBER scoring asks of them.

AMBER keeps only nouns whose lemma is one of its 418 object words, so the tagger only has to decide, for a
token whose lemma is such a word, whether NLTK would tag it NN*. Most object words are nouns wherever they
occur; the few that are also common verbs, adjectives, modals or gerunds ("can", "orange", "light",
"painting", "dove", "leave", ...) are decided by their neighbours. This is an approximation of NLTK's
averaged-perceptron tagger, not a copy of it: see docs/amber.md for the known differences.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from clipdpo_cli.io.text import sentences

# --- tokenisation (modelled on NLTK's punkt sentence split + NLTKWordTokenizer) ---------------------

_SPLIT_ALWAYS = re.compile(
    "([\u00ab\u201c\u2018\u201e\u00bb\u201d\u2019`\"()\\[\\]{}<>;@#$%&*?!\u2012-\u2015]|--|\\.{2,})"
)
_COLON_COMMA = re.compile(r"([:,])(?!\d)")
_FINAL_PERIOD = re.compile(r"([^.])\.([\]\)}>\"']*)\s*$")
_CONTRACTION = re.compile(r"([^' ])('[sSmMdD]|'ll|'LL|'re|'RE|'ve|'VE|n't|N'T|')(?= |$)")
_LEADING_QUOTE = re.compile(r"(?<![\w])'(?=\w)")


def tokenize_sentence(sentence: str) -> list[str]:
    """Word tokens of one sentence: punctuation split off, hyphens and slashes kept inside words,
    only the sentence-final period separated, clitics ('s, n't, ...) split."""
    text = _SPLIT_ALWAYS.sub(r" \1 ", sentence)
    text = _COLON_COMMA.sub(r" \1 ", text)
    text = _FINAL_PERIOD.sub(r"\1 . \2 ", text)
    text = _LEADING_QUOTE.sub("' ", text)
    text = " " + " ".join(text.split()) + " "
    text = _CONTRACTION.sub(r"\1 \2", text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    return [token for sentence in sentences(text) for token in tokenize_sentence(sentence)]


# --- lemmatisation (WordNet's noun rules, as NLTK's WordNetLemmatizer applies them) -----------------

NOUN_SUFFIX_RULES = (
    ("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"),
    ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"),
)  # fmt: skip

# WordNet's noun exception list (noun.exc), the entries whose lemma is or shadows an AMBER object word.
NOUN_EXCEPTIONS = {
    "busses": "bus", "children": "child", "fishes": "fish", "geese": "goose", "knives": "knife",
    "leaves": "leaf",  # noun.exc lists leaf and leave; the lemmatiser keeps the shorter
    "men": "man", "mice": "mouse", "potatoes": "potato", "tomatoes": "tomato", "scarves": "scarf",
    "shelves": "shelf", "bookshelves": "bookshelf", "penknives": "penknife", "pocketknives": "pocketknife",
    "teeth": "tooth", "feet": "foot", "wives": "wife", "lives": "life", "halves": "half", "calves": "calf",
    "wolves": "wolf", "loaves": "loaf", "oxen": "ox", "lice": "louse", "cola": "cola",
}  # fmt: skip

# Plural object words whose rule-made singular is itself a WordNet noun: the lemmatiser returns that
# shorter form, so (as with the official scorer) these spellings never match the vocabulary entry.
SHORTER_WORDNET_LEMMA = {
    "chopsticks": "chopstick", "earrings": "earring", "slippers": "slipper", "sunglasses": "sunglass",
    "vases": "vas",  # WordNet has the noun "vas" (plural vasa), shorter than "vase"
}  # fmt: skip

# Vocabulary entries that are not WordNet nouns (misspellings, hyphenated forms): their plurals are not
# reduced to them.
NOT_IN_WORDNET = frozenset({
    "air-conditioning", "baconic", "cann", "cathole", "closestool", "doghole", "e-book", "earing",
    "electrombile", "rpoe", "scoon", "seegull", "showerpuff", "waterfont", "mousepad", "necklet",
    "earrings", "slippers", "sunglasses", "chopsticks", "TV",
})  # fmt: skip


class NounLemmatizer:
    """WordNetLemmatizer().lemmatize(word) (pos 'n') for the words AMBER can use: exceptions, then the
    suffix rules, keeping the shortest candidate known to WordNet; anything else comes back unchanged."""

    def __init__(self, vocabulary: frozenset[str]) -> None:
        self.known = frozenset(w for w in vocabulary if w not in NOT_IN_WORDNET and w == w.lower())
        self._cache: dict[str, str] = {}

    def lemmatize(self, word: str) -> str:
        lemma = self._cache.get(word)
        if lemma is None:
            lemma = self._cache[word] = self._lemmatize(word)
        return lemma

    def _lemmatize(self, word: str) -> str:
        if word in NOUN_EXCEPTIONS:
            return NOUN_EXCEPTIONS[word]
        if word in SHORTER_WORDNET_LEMMA:
            return SHORTER_WORDNET_LEMMA[word]
        if word != word.lower():  # WordNet's index is lower-case: nothing matches, the word is returned
            return word
        forms = [word] + [word[: -len(old)] + new for old, new in NOUN_SUFFIX_RULES if word.endswith(old)]
        found = [f for f in forms if f in self.known]
        return min(found, key=len) if found else word


# --- tagging: is this object word used as a noun here? -----------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DETERMINERS = _words(
    "a an the this that these those my your his her its our their some any each every another other no "
    "several many few both all one two three four five six seven eight nine ten multiple various numerous "
    "'s large small big little white black red blue green yellow brown gray grey pink purple"
)
PREPOSITIONS = _words(
    "of on in at with by from near under behind beside besides above below over into onto for around "
    "between among across inside outside along against beneath through without like toward towards upon "
    "atop underneath"
)
MODALS = _words("can could will would shall should may might must cannot")
SUBJECT_PRONOUNS = _words("i we you they people men women children kids")
THIRD_PERSON = _words("he she it who which")
BE_FORMS = _words("is are was were be been being am 's")

# Object words that are also common verbs (base form): after "to", a modal or a subject pronoun NLTK
# tags them VB/VBP.
VERB_LIKE = _words(
    "watch drink support spray tie switch file note bill board ground water sound stage track train ring "
    "lock plug tap tape pack pad rack net bear duck skate ski grill pipe string wire shell sheet warp bail "
    "core court desert monitor signal tire hose tank cash lounge drain line sign light range rock bat brush "
    "shovel paddle saddle rope cloud snow ice star fence fish house shoe bike cage ball bag book bottle "
    "bridge cushion man phone plate screen ship spade table towel truck wall plane pen mat bin box cream "
    "kid pole pot rail sand scoop sled snack soap sponge stool stone toast tub worm yacht cooker bath "
    "spray leave dove pigeon hat"
)
# Object words that are also adjectives: a modifier before another word, or a predicate after "be".
ADJECTIVE_LIKE = _words("orange light hot individual cream")
COLOR_WORDS = _words(
    "white black red blue green yellow brown gray grey pink purple orange beige tan gold golden silver "
    "colored coloured"
)
# Nouns an adjective-like object word often modifies that are not object words themselves.
MODIFIED_HEADS = _words(
    "shirt jacket dress juice color colour hue tone tones fixture fixtures peel slice slices"
)
# Object words that are also gerunds: a verb after "be" or right after a noun phrase with an object.
GERUND_LIKE = _words("sailing drawing painting building")
# Only a noun right after a determiner or adjective ("a dove", "the leave"); otherwise a verb form.
NOUN_ONLY_AFTER_DETERMINER = _words("dove leave")
CAN_COMPOUNDS = _words("soda trash garbage beer tin paint watering aluminum metal food coke oil")


def _is_noun(
    tokens: list[str], i: int, lemma: str, lemmatize: Callable[[str], str], vocabulary: frozenset[str]
) -> bool:
    word = tokens[i]
    lower = word.lower()
    prev = tokens[i - 1].lower() if i > 0 else ""
    prev2 = tokens[i - 2].lower() if i > 1 else ""
    nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else "."
    after_determiner = prev in DETERMINERS or prev in PREPOSITIONS
    if lower == "can":
        return after_determiner or prev in CAN_COMPOUNDS or nxt in ("of", ".", ",", "and")
    if lemma in NOUN_ONLY_AFTER_DETERMINER:
        return prev in DETERMINERS
    if lemma in ADJECTIVE_LIKE and word == lemma:
        if prev in BE_FORMS:
            return False  # a predicate: "the sky is orange"
        if nxt in COLOR_WORDS or nxt in MODIFIED_HEADS or lemmatize(nxt) in vocabulary:
            return False  # modifies the next word: "an orange shirt", "light blue", "a hot dog"
    if lemma in GERUND_LIKE and word == lemma:
        if prev in BE_FORMS:
            return False
        if not after_determiner and (nxt in DETERMINERS or nxt in ("him", "her", "them", "it")):
            return False  # "a man painting a wall"
    if lemma in VERB_LIKE:
        if word == lemma and (
            (prev == "to" and prev2 not in ("next", "close", "attached", "adjacent", "near", "due", "up"))
            or prev in MODALS
            or prev in SUBJECT_PRONOUNS
        ):
            return False
        if word != lemma and word.endswith("s") and prev in THIRD_PERSON:
            return False  # "she watches"
    return True


class BuiltinNouns:
    """Noun extraction without downloads: tokens tagged as nouns, lemmatised, case kept."""

    name = "builtin"

    def __init__(self, vocabulary: frozenset[str]) -> None:
        self.lemmatizer = NounLemmatizer(vocabulary)
        self.vocabulary = vocabulary

    def _lower_lemma(self, word: str) -> str:
        return self.lemmatizer.lemmatize(word.lower())

    def nouns(self, text: str) -> list[str]:
        """Lemmas of the tokens tagged as nouns. Tokens whose lemma is outside the vocabulary are left
        out (the scorer drops them anyway), so this is exactly what AMBER scoring keeps."""
        out: list[str] = []
        vocabulary = self.vocabulary
        for sentence in sentences(text):
            tokens = tokenize_sentence(sentence)
            for i, token in enumerate(tokens):
                lemma = self.lemmatizer.lemmatize(token)
                if lemma in vocabulary and _is_noun(tokens, i, lemma, self._lower_lemma, vocabulary):
                    out.append(lemma)
        return out
