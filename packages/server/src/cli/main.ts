#!/usr/bin/env node
console.log('dinfer');
