/* test_rate.c - token buckets. */
#include "rate.h"
#include "unit.h"

START_TEST(burst_then_refill)
{
    struct rate_bucket b;
    int64_t wait = 0;

    rate_init(&b, 3, 1000);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rate_take(&b, 10, 3, 1000, NULL), 1);
    }
    ck_assert_int_eq(rate_take(&b, 10, 3, 1000, &wait), 0);
    ck_assert_int_eq(wait, 101);                    /* 10/s: a token per 100 ms */
    ck_assert_int_eq(rate_take(&b, 10, 3, 1050, NULL), 0);
    ck_assert_int_eq(rate_take(&b, 10, 3, 1100, NULL), 1);
    /* A long pause refills only up to the burst. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rate_take(&b, 10, 3, 100000, NULL), 1);
    }
    ck_assert_int_eq(rate_take(&b, 10, 3, 100000, NULL), 0);
}
END_TEST

START_TEST(zero_rate_is_unlimited)
{
    struct rate_bucket b;

    rate_init(&b, 1, 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(rate_take(&b, 0, 1, 0, NULL), 1);
    }
}
END_TEST

Suite *suite_rate(void)
{
    Suite *s = suite_create("rate");
    TCase *tc = tcase_create("rate");

    tcase_add_test(tc, burst_then_refill);
    tcase_add_test(tc, zero_rate_is_unlimited);
    suite_add_tcase(s, tc);
    return s;
}
