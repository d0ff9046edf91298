{
  "targets": [
    {
      "target_name": "cairn_native",
      "sources": ["src/cairn_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
