"""Test settings for the cobrowse package (its helpers are imported as ``tests.cobrowse.*``)."""
