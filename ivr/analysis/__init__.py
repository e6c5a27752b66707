"""The analysis desk: rollups kept by triggers, dashboard queries, hotspots, exports, scale."""
