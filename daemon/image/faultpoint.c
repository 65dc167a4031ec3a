#include "config.h"

#include "faultpoint.h"

int (*image_faultpoint_hook)(const char *step);
