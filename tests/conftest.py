import os
import sys

# the oracles sit beside the tests and are imported as a plain module
sys.path.insert(0, os.path.dirname(__file__))
