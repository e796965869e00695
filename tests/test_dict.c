/* test_dict.c - the string-keyed hash table. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dict.h"
#include "parley.h"
#include "unit.h"

START_TEST(add_find_set_delete)
{
    struct dict *d = dict_create();
    int a = 1, b = 2;

    ck_assert_ptr_null(dict_find(d, "x"));
    ck_assert_int_eq(dict_add(d, "x", &a), PL_OK);
    ck_assert_ptr_eq(dict_find(d, "x"), &a);
    ck_assert_int_eq(dict_set(d, "x", &b), PL_OK);
    ck_assert_ptr_eq(dict_find(d, "x"), &b);
    ck_assert_int_eq(dict_set(d, "y", &a), PL_OK);
    ck_assert_uint_eq(dict_size(d), 2);
    ck_assert_ptr_eq(dict_delete(d, "x"), &b);
    ck_assert_ptr_null(dict_delete(d, "x"));
    ck_assert_ptr_null(dict_find(d, "x"));
    ck_assert_uint_eq(dict_size(d), 1);
    dict_free(d);
}
END_TEST

START_TEST(grows_and_iterates_every_entry_once)
{
    struct dict *d = dict_create();
    char key[32];
    static char seen[5000];
    struct dict_iter it;
    const char *k;
    void *v;
    int n = 0;

    for (intptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "room-%ld", (long)i);
        ck_assert_int_eq(dict_add(d, key, (void *)i), PL_OK);
    }
    for (intptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "room-%ld", (long)i);
        ck_assert_ptr_eq(dict_find(d, key), (void *)i);
    }
    memset(seen, 0, sizeof(seen));
    dict_iter_init(&it);
    while (dict_next(d, &it, &k, &v)) {
        intptr_t i = (intptr_t)v;
        ck_assert_int_eq(seen[i], 0);
        seen[i] = 1;
        n++;
        if (i % 2 == 0) {
            dict_delete(d, k);      /* deleting the current entry is allowed */
        }
    }
    ck_assert_int_eq(n, 5000);
    ck_assert_uint_eq(dict_size(d), 2500);
    dict_free(d);
}
END_TEST

Suite *suite_dict(void)
{
    Suite *s = suite_create("dict");
    TCase *tc = tcase_create("dict");

    tcase_add_test(tc, add_find_set_delete);
    tcase_add_test(tc, grows_and_iterates_every_entry_once);
    suite_add_tcase(s, tc);
    return s;
}
