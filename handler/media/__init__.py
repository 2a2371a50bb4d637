"""Media: untrusted bytes sniffed once into a still, a multi-frame image or a video (`values`), and one
`judge` for all three returning one verdict type (`judge`)."""
