"""Text in images (OCR): a bounded pool of worker processes (``pool``), what each worker does with one
image (``reader``), and the service that reads every stored image and hands its text to the ingest
(``service``)."""
