'use strict';
/** Preloaded (`node -r`) into a child: writes its peak RSS in bytes to BENCH_MAXRSS_FILE on exit. */
const { writeFileSync } = require('node:fs');
const file = process.env.BENCH_MAXRSS_FILE;
if (file)
  process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS * 1024)));
