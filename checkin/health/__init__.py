"""The health feed: code colours, test results and the watchlist in each person's hot state."""
