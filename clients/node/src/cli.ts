#!/usr/bin/env node
import { run } from './commands.ts'

try {
  process.exitCode = await run(process.argv.slice(2), { out: (line) => console.log(line), env: process.env })
} catch (error) {
  console.error((error as Error).message)
  process.exitCode = 1
}
