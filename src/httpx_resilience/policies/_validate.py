"""The option checks, re-exported from their home in the core (``httpx_resilience._validate``).

Kept while branches that still import them from here are merged; new code imports
``.._validate``. Every name the old module defined is re-exported, so both spellings are the
same objects.
"""

from .._validate import BOOLEAN as BOOLEAN
from .._validate import MIN_RATE as MIN_RATE
from .._validate import MIN_WINDOW as MIN_WINDOW
from .._validate import NON_NEGATIVE as NON_NEGATIVE
from .._validate import POSITIVE as POSITIVE
from .._validate import RATIO as RATIO
from .._validate import TEXT as TEXT
from .._validate import Rule as Rule
from .._validate import at_least as at_least
from .._validate import choice as choice
from .._validate import derived as derived
from .._validate import integer as integer
from .._validate import not_finite as not_finite
from .._validate import positive as positive
from .._validate import positive_or_none as positive_or_none
from .._validate import rate_problem as rate_problem
from .._validate import ratio as ratio
from .._validate import too_small as too_small
from .._validate import window_problem as window_problem
