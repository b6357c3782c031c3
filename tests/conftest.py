"""Shared test setup."""

import os

# jsii prints a banner when Node 20 (what CI has) is past its support window; it says nothing about us.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
