"""siamtrack: a real-time siamese single-object tracker (NanoTrack-v3-style network, OpenCV-style API)."""
from importlib.metadata import PackageNotFoundError, version

from .engines import Engine, load_engine
from .errors import UserError
from .multi import MultiTracker
from .result import TrackResult
from .tracking import SiamTracker

try:
    __version__ = version("siamtrack")
except PackageNotFoundError:  # running from a source checkout without installing
    __version__ = "0+unknown"

__all__ = ["Engine", "MultiTracker", "SiamTracker", "TrackResult", "UserError", "__version__", "load_engine"]
