"""Customer segments: RFM scores and the marketer's rule table."""
