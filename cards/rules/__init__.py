"""One module per clinical rule (or small group per theme) of RULES.md; each registers itself
with :func:`cards.registry.rule`. Modules here are pure: chart + hook + clock in, card out."""
