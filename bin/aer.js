#!/usr/bin/env node
import { main } from "../dist/cli/aer.js";
await main();
