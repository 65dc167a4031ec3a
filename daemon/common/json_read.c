#include "config.h"

#include <errno.h>

#include "json_read.h"

json_object *json_read_message(const char *buf, size_t len)
{
    struct json_tokener *tok;
    json_object *obj;
    bool whole;

    if (len > INT32_MAX || !(tok = json_tokener_new_ex(JSON_READ_MAX_DEPTH)))
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, buf, (int)len);
    whole = json_tokener_get_error(tok) == json_tokener_success &&
            json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!whole || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

static json_object *field(json_object *obj, const char *key, enum json_type type)
{
    json_object *v;

    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, type))
        return NULL;
    return v;
}

const char *json_read_string(json_object *obj, const char *key)
{
    json_object *v = field(obj, key, json_type_string);

    return v ? json_object_get_string(v) : NULL;
}

json_object *json_read_object(json_object *obj, const char *key)
{
    return field(obj, key, json_type_object);
}

json_object *json_read_array(json_object *obj, const char *key)
{
    return field(obj, key, json_type_array);
}

bool json_read_int(json_object *obj, const char *key, int64_t min, int64_t max, int64_t *out)
{
    json_object *v = field(obj, key, json_type_int);
    int64_t n;

    if (!v)
        return false;
    /* json-c clamps what does not fit in 64 bits and says so in errno. */
    errno = 0;
    n = json_object_get_int64(v);
    if (errno || n < min || n > max)
        return false;
    *out = n;
    return true;
}

bool json_read_bool(json_object *obj, const char *key, bool *out)
{
    json_object *v = field(obj, key, json_type_boolean);

    if (!v)
        return false;
    *out = json_object_get_boolean(v);
    return true;
}

bool json_read_has(json_object *obj, const char *key)
{
    return json_object_is_type(obj, json_type_object) && json_object_object_get_ex(obj, key, NULL);
}
