/* Reading JSON that comes from someone we do not trust (a worker, which
 * parses hostile images): typed, NULL-safe accessors.  A missing field, a
 * JSON null and a value of the wrong type all read as "absent"; nothing
 * here can crash on what the message holds. */
#ifndef QCOWD_JSON_READ_H
#define QCOWD_JSON_READ_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_READ_MAX_DEPTH 16

/* One message: strict JSON, valid UTF-8, nesting at most
 * JSON_READ_MAX_DEPTH, exactly len bytes, an object.  NULL otherwise. */
json_object *json_read_message(const char *buf, size_t len);

/* The field `key` of `obj` (obj may be NULL or not an object): */
const char *json_read_string(json_object *obj, const char *key);   /* NULL unless a string */
json_object *json_read_object(json_object *obj, const char *key);  /* NULL unless an object */
json_object *json_read_array(json_object *obj, const char *key);   /* NULL unless an array */
/* An integer in [min, max] (no fraction, no string): true and *out. */
bool json_read_int(json_object *obj, const char *key, int64_t min, int64_t max, int64_t *out);
bool json_read_bool(json_object *obj, const char *key, bool *out);
/* Whether obj has the field at all (even null). */
bool json_read_has(json_object *obj, const char *key);

#endif
