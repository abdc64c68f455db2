// Checks WPS 1.0.0 / 2.0 documents against the official schemas, independently of
// gproc's Python code, through the Jsonix mappings of npm's ogc-schemas (generated
// from the OGC XSDs) and their JSON schemas:
//  1. Jsonix unmarshals the document (element names, namespaces, value types:
//     integers, booleans, dates, enumerations as mapped);
//  2. every element and attribute of the document survives a marshal round trip
//     (Jsonix drops what the schema does not declare at that place);
//  3. every attribute the schema requires (use="required") is there, following the
//     types' base types through the JSON schemas. (Required *elements* are not
//     checked here: the mappings mark every branch of an xs:choice as required, so
//     the tests check the elements they rely on themselves.)
// Usage: node wps_schema_check.js FILE...; prints one JSON line per file
// {"file", "ok", "root", "errors": [...]}.
'use strict';
const fs = require('fs');
const path = require('path');
const Jsonix = require('jsonix').Jsonix;
const { XLink_1_0 } = require('w3c-schemas');
const { OWS_2_0, WPS_2_0, OWS_1_1_0, WPS_1_0_0 } = require('ogc-schemas');
const { DOMParser } = require('xmldom');

const MAPPINGS = [XLink_1_0, OWS_2_0, WPS_2_0, OWS_1_1_0, WPS_1_0_0];
const SCHEMA_DIR = path.join(path.dirname(require.resolve('ogc-schemas/package.json')), 'jsonschemas');
const SCHEMAS = {};
for (const name of ['OWS_2_0', 'WPS_2_0', 'OWS_1_1_0', 'WPS_1_0_0']) {
  const doc = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, name + '.jsonschema'), 'utf8'));
  SCHEMAS[name] = doc;
  SCHEMAS[doc.id.replace(/#$/, '')] = doc;
}
const context = new Jsonix.Context(MAPPINGS);

function resolve(ref, here) {
  const [where, pointer] = ref.split('#');
  const doc = where ? SCHEMAS[where] : here;
  if (!doc || !pointer || !pointer.startsWith('/definitions/')) return [null, null];
  return [doc.definitions[pointer.slice('/definitions/'.length)], doc];
}

function requiredAttributes(def, doc, seen = new Set()) {
  const out = new Set();
  const props = def.properties || {};
  for (const r of def.required || []) {
    if (props[r] && props[r].propertyType === 'attribute') out.add(r);
  }
  for (const part of def.allOf || []) {
    if (part.$ref) {
      const [base, baseDoc] = resolve(part.$ref, doc);
      if (base && !seen.has(part.$ref)) {
        seen.add(part.$ref);
        for (const r of requiredAttributes(base, baseDoc, seen)) out.add(r);
      }
    } else {
      const inner = { ...part, required: def.required };
      for (const r of requiredAttributes(inner, doc, seen)) out.add(r);
    }
  }
  return out;
}

function checkRequired(value, where, errors) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkRequired(v, `${where}[${i}]`, errors));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (value.name && value.value !== undefined && value.name.localPart) {
    checkRequired(value.value, `${where}/${value.name.localPart}`, errors);
    return;
  }
  const type = value.TYPE_NAME;
  if (type) {
    const dot = type.indexOf('.');
    const module = type.slice(0, dot);
    const local = type.slice(dot + 1);
    const doc = SCHEMAS[module];
    const def = doc && doc.definitions[local];
    if (def) {
      for (const r of requiredAttributes(def, doc)) {
        const v = value[r];
        if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) {
          errors.push(`${where}: ${type} requires ${r}`);
        }
      }
    }
  }
  for (const [k, v] of Object.entries(value)) {
    if (k !== 'TYPE_NAME') checkRequired(v, `${where}.${k}`, errors);
  }
}

function inventory(node, prefix, out) {
  if (node.nodeType !== 1) return;
  const here = `${prefix}/{${node.namespaceURI || ''}}${node.localName}`;
  out.push(here);
  for (let i = 0; i < node.attributes.length; i++) {
    const a = node.attributes[i];
    if (a.name === 'xmlns' || a.prefix === 'xmlns') continue;
    if (a.namespaceURI === 'http://www.w3.org/2001/XMLSchema-instance') continue;
    out.push(`${here}@{${a.namespaceURI || ''}}${a.localName}`);
  }
  for (let c = node.firstChild; c; c = c.nextSibling) inventory(c, here, out);
  return out;
}

function check(file) {
  const errors = [];
  const text = fs.readFileSync(file, 'utf8');
  let obj;
  try {
    obj = context.createUnmarshaller().unmarshalString(text);
  } catch (e) {
    return { file, ok: false, root: null, errors: [`unmarshal: ${String(e).slice(0, 400)}`] };
  }
  const again = context.createMarshaller().marshalString(obj);
  const before = inventory(new DOMParser().parseFromString(text).documentElement, '', []);
  const after = inventory(new DOMParser().parseFromString(again).documentElement, '', []);
  const left = new Map();
  for (const p of after) left.set(p, (left.get(p) || 0) + 1);
  for (const p of before) {
    if (left.get(p)) left.set(p, left.get(p) - 1);
    else errors.push(`not in the schema here: ${p}`);
  }
  checkRequired(obj, '', errors);
  return { file, ok: errors.length === 0, root: obj.name.localPart, errors: errors.slice(0, 20) };
}

for (const file of process.argv.slice(2)) console.log(JSON.stringify(check(file)));
