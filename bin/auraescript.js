#!/usr/bin/env node
import { main } from "../dist/auraescript/main.js";
await main();
