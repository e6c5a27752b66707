"""The browser driver: the console's test phone (/phone/) runs calls through the shared call runner."""
