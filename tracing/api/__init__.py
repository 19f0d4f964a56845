"""The tracing service's HTTP side: trace, exposure-site, alert and statistics routes, the audit
log every trace writes, and the web console."""
