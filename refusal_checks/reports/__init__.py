"""What a run says: the summary, the JSON report's schema, comparisons, the HTML page.
"""
