// Preloaded into a daemon with NODE_OPTIONS="--require .../cpu-profile.cjs" (Node 20 does not
// allow --cpu-prof in NODE_OPTIONS): profiles the process with the inspector and writes
// $AURAE_BENCH_PROF_DIR/auraed-<pid>.cpuprofile when it exits (open it in Chrome DevTools).
// With AURAE_BENCH_PROF_WINDOWS=1 it profiles only between signals instead: each SIGUSR2
// starts a window or ends it, writing auraed-<pid>-<n>.cpuprofile (so one phase of a run, e.g.
// Starts at 10,000 executables, can be told from the build before it); a window open at exit
// is written then.
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
  // a session on the own thread dispatches synchronously
  const write = (name) =>
    session.post("Profiler.stop", (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, name), JSON.stringify(res.profile));
    });
  if (process.env.AURAE_BENCH_PROF_WINDOWS === "1") {
    let running = false;
    let n = 0;
    process.on("SIGUSR2", () => {
      if (running) write(`auraed-${process.pid}-${++n}.cpuprofile`);
      else session.post("Profiler.start");
      running = !running;
    });
    // a window still open at exit (e.g. one around shutdown) is written then
    process.on("exit", () => {
      if (running) write(`auraed-${process.pid}-${++n}.cpuprofile`);
    });
  } else {
    session.post("Profiler.start");
    process.on("exit", () => write(`auraed-${process.pid}.cpuprofile`));
  }
}
