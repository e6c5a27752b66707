"""The analysis desk: rollups kept by triggers, dashboard queries, critical points, exports, scale."""
