"""Building blocks for tenant onboarding (issue #16): lease PDFs, a document store, signed download links and
notifiers. Each module stands alone; import the one you need (`tools.documents.lease` pulls in fpdf2, the others
do not).

- `lease`: `LeaseTerms` and `render_lease_pdf` (a one-or-two-page lease summary, PDF bytes).
- `store`: `DocumentStore`, `DocumentRef` and `FolderDocumentStore` (files under `DOCUMENTS_DIR`).
- `db_store`: the `documents` table and `DatabaseDocumentStore`.
- `links`: `sign_document_link` / `verify_document_link` for `GET /documents/<id>`.
- `notify`: `Notifier`, `OutboundMessage`, `DeliveryReceipt`, `LogNotifier`; `smtp`: `SmtpNotifier`.

Nothing here imports `bot` or `adapters`: tools sit below them.
"""
