"""seqwatch's fixes to faust-streaming, as the subclasses Faust lets an app plug in.

Faust 0.15.3 loses or duplicates data in several ways our fault tests caught (listed with
symptom, cause, test and an upstream report in `docs/faust-defects.md`). Each fix lives
in a subclass registered through one of Faust's own extension points, never by assigning
to an upstream class:

- `transport.Transport`, registered as the `seqwatch://` transport through the
  `faust.transports` entry point (pyproject.toml), brings the `Consumer`, `Producer`,
  `TransactionManager`, consumer thread and producer buffer subclasses;
- `recovery.TableManager`, passed as the app's `TableManager` setting, brings the
  `Recovery` subclass;
- `table.ChangelogTable`, the app's `Table` setting, sends a batch's changelog writes as
  record batches (F9);
- `app.SeqwatchApp` holds the state those fixes share per app (the event lock, the
  failure record, a pending restart) instead of module globals.

`versions.check()` refuses to start with other versions than the ones the fixes were
written against; `tests/unit/test_faust_canaries.py` fails when upstream code a fix
relies on changes.
"""
