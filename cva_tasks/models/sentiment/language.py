"""Which language a feedback text is in, and whether the sentiment model may score it.

The sentiment model learns words, so a German text that happens to contain one word
the English training data had ("Das Kleid ... und") would be scored on that word
alone. This module detects the language of each text with ``py3langid`` (a maintained
fork of langid.py; its model ships inside the wheel and is read with
``allow_pickle=False``, so nothing is downloaded or unpickled at run time) and:

* at training, records the languages the model was trained on
  (:func:`trained_languages`: every language holding at least
  :data:`MIN_LANGUAGE_SHARE` of the confidently detected training texts);
* at scoring, names the texts to leave unscored (:func:`unscored_reasons`): those
  whose language is *confidently* detected and not among the trained ones get the
  reason ``language:<ISO 639 code>`` (e.g. ``language:de``).

"Confidently" is two thresholds, chosen on the English review corpora in
``shared/data`` (women's clothing reviews and titles, Amazon musical-instrument
reviews and summaries: 62,832 texts, 29,937 of them titles or summaries of
at most a few words). py3langid's normalised confidence is tempered by the text's
length, yet short English titles still come out as Nigerian Pidgin, Somali or
French at up to 0.85 ("Sooo sheer": Somali 0.85; "Nice fit for cool weather": Pidgin
0.83). With :data:`MIN_CHARS` = 20 and :data:`MIN_CONFIDENCE` = 0.9 no English text
is unscored (false-unscored rate 0 of 62,829; the highest wrong-language confidence
left at 20+ characters is 0.83); the three texts that are, in the Amazon reviews, are
written in Spanish (two more Spanish ones read Spanish at 0.88-0.89 and stay scored).
``tests/integration/test_language_detection.py`` repeats the measurement. The price
is recall on short foreign texts: a 35-character German "Tolles Produkt, schnelle
Lieferung!" reads German at only 0.56 and is still scored. Shorter texts are never
unscored by language (too unreliable to tell), whatever they read as.

A model saved before languages were recorded (``languages`` absent from its params)
scores every text as it did: its training languages are unknown, and guessing
"English" would silently unscore the feedback of a shop whose old model was trained
on another language. Retraining records them.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: Texts as the model holds them (an object array of str) or any sequence of str.
Texts = Sequence[str] | np.ndarray

#: Texts shorter than this (stripped) are never unscored by language.
MIN_CHARS = 20
#: py3langid's normalised probability a detected language needs to count.
MIN_CONFIDENCE = 0.9
#: A language is "trained on" when it holds this share of the training texts whose
#: language was confidently detected (a handful of stray foreign reviews do not make
#: the model able to read that language).
MIN_LANGUAGE_SHARE = 0.05
#: With fewer confidently detected training texts than this (a shop whose feedback
#: is all one-liners), the training languages are unknown (``None``): every text is scored.
MIN_DETECTED_TEXTS = 20
#: Detection reads the start of a text only: enough for a confident answer (the five
#: Spanish Amazon reviews are 109-162 characters) and it bounds the time, as py3langid
#: walks every byte in Python: on the Amazon reviews (486 characters on average) 300
#: characters detect ~4,600 texts/s against ~2,900 with 1,000, with the same result.
DETECT_CHARS = 300
REASON_PREFIX = "language:"


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid's identifier with normalised probabilities, loaded once per process."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Most likely language and its probability per text.

    Args:
        texts: Strings.

    Returns:
        ``(codes, confidence)``: an object array of ISO 639 codes and a float array.
    """
    identifier = _identifier()
    pairs = [identifier.classify(text[:DETECT_CHARS]) for text in texts]
    codes = np.array([code for code, _ in pairs], dtype=object)
    confidence = np.array([conf for _, conf in pairs], dtype=float)
    return codes, confidence


def confident_languages(texts: Texts) -> np.ndarray:
    """The detected language where detection is trustworthy, else ``None``.

    Trustworthy: at least :data:`MIN_CHARS` characters (stripped) and a probability of
    at least :data:`MIN_CONFIDENCE`. Short texts are not run through the detector.
    """
    out = np.full(len(texts), None, dtype=object)
    long_enough = np.flatnonzero([len(text.strip()) >= MIN_CHARS for text in texts])
    if len(long_enough):
        codes, confidence = detect(str(texts[int(i)]) for i in long_enough)
        sure = confidence >= MIN_CONFIDENCE
        out[long_enough[sure]] = codes[sure]
    return out


def trained_languages(texts: Texts) -> dict[str, Any]:
    """The languages a model trained on ``texts`` can read, for its params.

    Returns:
        ``languages``: sorted ISO 639 codes holding at least
        :data:`MIN_LANGUAGE_SHARE` of the confidently detected texts, or ``None``
        when fewer than :data:`MIN_DETECTED_TEXTS` texts were confidently detected
        (unknown: the model will score every text); ``language_shares``: each
        detected language's share (rounded, largest first); ``n_language_detected``.
    """
    found = [code for code in confident_languages(texts) if code is not None]
    counts = Counter(found)
    shares = {code: round(n / len(found), 4) for code, n in counts.most_common()}
    languages = (
        sorted(code for code, n in counts.items() if n / len(found) >= MIN_LANGUAGE_SHARE)
        if len(found) >= MIN_DETECTED_TEXTS
        else None
    )
    return {
        "languages": languages,
        "language_shares": shares,
        "n_language_detected": len(found),
    }


def check_languages(value: object) -> list[str] | None:
    """``value`` as stored in a model's params: a list of codes, or ``None`` (unknown).

    Raises:
        ValueError: Anything else (the params file was not written by this code).
    """
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(code, str) for code in value):
        return value
    raise ValueError(f"languages {value!r}: expected a list of ISO 639 codes or null")


def unscored_reasons(texts: Texts, languages: Sequence[str] | None) -> np.ndarray:
    """``language:<code>`` where a text is confidently in a language not in ``languages``.

    Args:
        texts: Strings (blank ones are too short to be detected).
        languages: The model's training languages; ``None`` (unknown) leaves every text
            to the model and runs no detection.

    Returns:
        Object array: the reason, or ``None`` where the text may be scored.
    """
    out = np.full(len(texts), None, dtype=object)
    if languages is None or not len(texts):
        return out
    known = set(languages)
    for i, code in enumerate(confident_languages(texts)):
        if code is not None and code not in known:
            out[i] = REASON_PREFIX + code
    return out
