"""The A/B experiment's arms: which model prices (and shows its price for) a listing.

A listing carrying a `listing_key` goes to the challenger when the first 32 bits of
HMAC-SHA256(salt, key), read as a fraction of 2**32, fall below the challenger's share. The
salt is the experiment's own (fresh per experiment, never shown to callers), so a caller cannot
steer a listing's arm and each experiment splits the listings anew. A listing keeps its arm on
every request, in every worker and in the simulator. A listing without a key stays with the
champion.
"""

from __future__ import annotations

import hashlib
import hmac

CHAMPION, CHALLENGER = "champion", "challenger"
ARMS = (CHAMPION, CHALLENGER)
LISTING_KEY_MAX = 64  # characters of a listing_key


def arm_fraction(listing_key: str, salt: str) -> float:
    """Return the key's place in [0, 1): the first 32 bits of HMAC-SHA256(salt, key) / 2**32."""
    digest = hmac.new(salt.encode(), listing_key.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def assign_arm(listing_key: str | None, share: float, salt: str) -> str:
    """Return "challenger" when the key's fraction is below `share`, else "champion"."""
    if listing_key is None or share <= 0:
        return CHAMPION
    return CHALLENGER if arm_fraction(listing_key, salt) < share else CHAMPION


def parse_share(text: str | float | None, name: str = "CARPRICE_AB_SHARE") -> float:
    """Return a challenger share from configuration (None or "" is 0); raise ValueError naming
    `name` when it is not a number between 0 and 1."""
    if text is None or text == "":
        return 0.0
    try:
        share = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= share <= 1.0:  # NaN fails too
        raise ValueError(f"{name} must be a number between 0 and 1, got {text!r}")
    return share
