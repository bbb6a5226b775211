// Preloaded into a daemon with NODE_OPTIONS="--require .../cpu-profile.cjs" (Node 20 does not
// allow --cpu-prof in NODE_OPTIONS): profiles the whole process with the inspector and writes
// $AURAE_BENCH_PROF_DIR/auraed-<pid>.cpuprofile when it exits (open it in Chrome DevTools).
"use strict";
const inspector = require("node:inspector");
const fs = require("node:fs");
const path = require("node:path");
const dir = process.env.AURAE_BENCH_PROF_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.setSamplingInterval", { interval: 200 });
  session.post("Profiler.enable");
  session.post("Profiler.start");
  process.on("exit", () => {
    // a session on the own thread dispatches synchronously
    session.post("Profiler.stop", (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `auraed-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
