#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "expr/expr.h"
#include "expr/tests/expr_test_util.h"

namespace sluice::expr::testing {
namespace {

// ---- calling functions ----

TEST_F(ExprTest, FunctionNamesAreCaseInsensitive) {
  EXPECT_EQ(Eval("ROUND(2.5)"), "double 3");
  EXPECT_EQ(Eval("Coalesce(n_null, 7)"), "int64 7");
  EXPECT_EQ(Eval("IF(flag, 1, 2)"), "int64 1");
}

TEST_F(ExprTest, UnknownFunctionsAndArity) {
  EXPECT_EQ(Error("rond(1.5)"), "<expr>:1:1: unknown function 'rond' (did you mean 'round'?)");
  EXPECT_EQ(Error("clicks + foo(1)"), "<expr>:1:10: unknown function 'foo'");
  EXPECT_EQ(Error("hour()"), "<expr>:1:1: hour() takes 1 argument, got 0");
  EXPECT_EQ(Error("round(1, 2, 3)"), "<expr>:1:1: round() takes 1 or 2 arguments, got 3");
  EXPECT_EQ(Error("if(true, 1)"), "<expr>:1:1: if() takes 3 arguments, got 2");
  EXPECT_EQ(Error("concat()"), "<expr>:1:1: concat() takes at least 1 argument, got 0");
  EXPECT_EQ(Error("round(1 2)"),
            "<expr>:1:9: expected ',' or ')' after argument 1 of round(), found '2'");
  EXPECT_EQ(Error("round(1,"), "<expr>:1:9: expected an expression after ','");
}

// ---- conditionals ----

TEST_F(ExprTest, Coalesce) {
  EXPECT_EQ(Eval("coalesce(n_null, 0)"), "int64 0");
  EXPECT_EQ(Eval("coalesce(clicks, 0)"), "int64 42");
  EXPECT_EQ(Eval("coalesce(n_null, bid)"), "double 2.5");
  EXPECT_EQ(TypeOf("coalesce(n_null, bid)"), "double");
  EXPECT_EQ(Eval("coalesce(clicks, 1.5)"), "double 42");  // int64 widened to the common type
  EXPECT_EQ(Eval("coalesce(d_null, clicks)"), "double 42");
  EXPECT_EQ(Eval("coalesce(s_null, name)"), "string 'alice'");
  EXPECT_EQ(Eval("coalesce(s_null, null, 'x')"), "string 'x'");
  EXPECT_EQ(Eval("coalesce(s_null, s_null)"), "null");
  EXPECT_EQ(Eval("coalesce(null, null)"), "null");
  EXPECT_EQ(Eval("coalesce(n_null)"), "null");
  EXPECT_EQ(Eval("coalesce(1, n_null)"), "int64 1");
  EXPECT_EQ(Eval("coalesce(to_int(`my field`), 0)"), "int64 0");
  EXPECT_EQ(Error("coalesce(name, 1)"),
            "<expr>:1:16: the arguments of coalesce() must have one type: argument 2 of "
            "coalesce() is int64, the ones before are string");
}

TEST_F(ExprTest, If) {
  EXPECT_EQ(Eval("if(clicks > 10, 'big', 'small')"), "string 'big'");
  EXPECT_EQ(Eval("if(clicks > 100, 'big', 'small')"), "string 'small'");
  EXPECT_EQ(Eval("if(b_null, 1, 2)"), "int64 2");  // null is not true
  EXPECT_EQ(Eval("if(true, 1, 2.5)"), "double 1");
  EXPECT_EQ(Eval("if(flag, 1, 2.5)"), "double 1");
  EXPECT_EQ(Eval("if(flag, n_null, 5)"), "null");
  EXPECT_EQ(Eval("if(null, 1, 2)"), "int64 2");
  EXPECT_EQ(Eval("if(not flag, null, name)"), "string 'alice'");
  EXPECT_EQ(Error("if(clicks, 1, 2)"),
            "<expr>:1:4: argument 1 of if() must be a condition (bool), got int64");
  EXPECT_EQ(Error("if(flag, 1, 'a')"),
            "<expr>:1:13: the two branches of if() must have one type, got int64 and string");
}

// ---- time ----

TEST_F(ExprTest, TimeUuidTime) {
  EXPECT_EQ(Eval("timeuuid_time(uuid)"), "timestamp 2024-01-01 00:00:00");
  EXPECT_EQ(Eval("timeuuid_time('b4cc8000-a838-11ee-9234-0123456789ab') = '2024-01-01'"),
            "bool true");
  // Version 4 (random) UUIDs carry no time.
  EXPECT_EQ(Eval("timeuuid_time('b4cc8000-a838-41ee-9234-0123456789ab')"), "null");
  EXPECT_EQ(Eval("timeuuid_time('not a uuid')"), "null");
  EXPECT_EQ(Eval("timeuuid_time(s_null)"), "null");
  EXPECT_EQ(Error("timeuuid_time(clicks)"),
            "<expr>:1:15: argument 1 of timeuuid_time() must be string, got int64");
}

TEST_F(ExprTest, ParseTime) {
  EXPECT_EQ(Eval("parse_time('2024-03-15 13:45:30')"), "timestamp 2024-03-15 13:45:30");
  EXPECT_EQ(Eval("parse_time('2024-03-15T13:45:30+02:00')"), "timestamp 2024-03-15 11:45:30");
  EXPECT_EQ(Eval("parse_time('3/15/2024 13:45')"), "timestamp 2024-03-15 13:45:00");
  EXPECT_EQ(Eval("parse_time('garbage')"), "null");
  EXPECT_EQ(Eval("parse_time(s_null)"), "null");
  EXPECT_EQ(Eval("parse_time('2024-03-15 13:45', 'iso')"), "timestamp 2024-03-15 13:45:00");
  EXPECT_EQ(Eval("parse_time('3/15/2024 13:45', 'iso')"), "null");
  EXPECT_EQ(Eval("parse_time('3/15/2024 13:45', 'us')"), "timestamp 2024-03-15 13:45:00");
  EXPECT_EQ(Eval("parse_time('2024-03-15', 'us')"), "null");
  EXPECT_EQ(Error("parse_time(name, 'eu')"),
            "<expr>:1:18: unknown parse_time() format 'eu'; use 'iso' (2024-01-31 13:45:00), "
            "'us' (1/31/2024 13:45) or 'auto' (either)");
  EXPECT_EQ(Error("parse_time(name, name)"),
            "<expr>:1:18: argument 2 of parse_time() must be a constant string such as 'iso' or "
            "'us'");
  EXPECT_EQ(Error("parse_time(clicks)"),
            "<expr>:1:12: argument 1 of parse_time() must be string, got int64");
}

TEST_F(ExprTest, DateHourMinute) {
  EXPECT_EQ(Eval("date(ts)"), "string '2024-03-15'");
  EXPECT_EQ(Eval("hour(ts)"), "int64 13");
  EXPECT_EQ(Eval("minute(ts)"), "int64 45");
  // One second before the epoch: negative microseconds still give the civil fields.
  EXPECT_EQ(Eval("date(parse_time('1969-12-31 23:59:59'))"), "string '1969-12-31'");
  EXPECT_EQ(Eval("hour(parse_time('1969-12-31 23:59:59'))"), "int64 23");
  EXPECT_EQ(Eval("minute(parse_time('1969-12-31 23:59:59'))"), "int64 59");
  EXPECT_EQ(Eval("hour('2024-01-01 07:08:09')"), "int64 7");  // a constant string is a timestamp
  EXPECT_EQ(Eval("date(t_null)"), "null");
  EXPECT_EQ(Eval("hour(t_null)"), "null");
  EXPECT_EQ(Eval("date(timeuuid_time(uuid)) || ' ' || hour(timeuuid_time(uuid))"),
            "string '2024-01-01 0'");
  EXPECT_EQ(Error("hour(name)"), "<expr>:1:6: argument 1 of hour() must be timestamp, got string");
}

TEST_F(ExprTest, FormatTime) {
  EXPECT_EQ(Eval("format_time(ts, '%Y/%m/%d %H:%M:%S.%f')"),
            "string '2024/03/15 13:45:30.250000'");
  EXPECT_EQ(Eval("format_time(ts, '%Y%m%d-%H')"), "string '20240315-13'");
  EXPECT_EQ(Eval("format_time(ts, '100%%')"), "string '100%'");
  EXPECT_EQ(Eval("format_time(t_null, '%Y')"), "null");
  EXPECT_EQ(Eval("format_time(ts, s_null)"), "null");
}

TEST_F(ExprTest, FloorTime) {
  EXPECT_EQ(Eval("floor_time(ts, '1h')"), "timestamp 2024-03-15 13:00:00");
  EXPECT_EQ(Eval("floor_time(ts, '15m')"), "timestamp 2024-03-15 13:45:00");
  EXPECT_EQ(Eval("floor_time(ts, '10s')"), "timestamp 2024-03-15 13:45:30");
  EXPECT_EQ(Eval("floor_time(ts, '1d')"), "timestamp 2024-03-15 00:00:00");
  EXPECT_EQ(Eval("floor_time(parse_time('1969-12-31 23:59:59'), '1h')"),
            "timestamp 1969-12-31 23:00:00");
  EXPECT_EQ(Eval("floor_time(t_null, '1h')"), "null");
  EXPECT_EQ(Error("floor_time(ts, 'banana')"),
            "<expr>:1:16: 'banana' is not a positive duration (examples: '500ms', '10s', '15m', "
            "'1h', '1d')");
  EXPECT_EQ(Error("floor_time(ts, '0s')"),
            "<expr>:1:16: '0s' is not a positive duration (examples: '500ms', '10s', '15m', "
            "'1h', '1d')");
  EXPECT_EQ(Error("floor_time(ts, 'nan')"),
            "<expr>:1:16: 'nan' is not a positive duration (examples: '500ms', '10s', '15m', "
            "'1h', '1d')");
  EXPECT_EQ(Error("floor_time(ts, name)"),
            "<expr>:1:16: argument 2 of floor_time() must be a constant string such as '1h' or "
            "'15m'");
}

TEST_F(ExprTest, EpochSecondsAndSecondsBetween) {
  EXPECT_EQ(Eval("epoch_seconds(ts)"), "double 1710510330.25");
  EXPECT_EQ(Eval("epoch_seconds(parse_time('1969-12-31 23:59:59.5'))"), "double -0.5");
  EXPECT_EQ(Eval("epoch_seconds(t_null)"), "null");
  EXPECT_EQ(Eval("seconds_between(parse_time('2024-01-01 00:00:00'), "
                 "parse_time('2024-01-01 00:01:30.5'))"),
            "double 90.5");
  EXPECT_EQ(Eval("seconds_between('2024-01-01 00:01:30.5', '2024-01-01')"), "double -90.5");
  EXPECT_EQ(Eval("seconds_between('2024-03-15 13:45:00', ts)"), "double 30.25");
  EXPECT_EQ(Eval("seconds_between(ts, t_null)"), "null");
  EXPECT_EQ(Error("seconds_between(ts, 5)"),
            "<expr>:1:21: argument 2 of seconds_between() must be timestamp, got int64");
}

// ---- numbers ----

TEST_F(ExprTest, RoundHalfAwayFromZero) {
  EXPECT_EQ(Eval("round(2.5)"), "double 3");
  EXPECT_EQ(Eval("round(-2.5)"), "double -3");
  EXPECT_EQ(Eval("round(1.5)"), "double 2");
  EXPECT_EQ(Eval("round(0.5)"), "double 1");
  EXPECT_EQ(Eval("round(-0.5)"), "double -1");
  EXPECT_EQ(Eval("round(2.4999)"), "double 2");
  EXPECT_EQ(Eval("round(-0.4)"), "double 0");
  EXPECT_EQ(Eval("round(42)"), "double 42");
  EXPECT_EQ(Eval("round(bid)"), "double 3");
  EXPECT_EQ(TypeOf("round(clicks)"), "double");
}

TEST_F(ExprTest, RoundToDigitsUsesTheDecimalValue) {
  EXPECT_EQ(Eval("round(2.675, 2)"), "double 2.68");
  EXPECT_EQ(Eval("round(1.005, 2)"), "double 1.01");
  EXPECT_EQ(Eval("round(-1.005, 2)"), "double -1.01");
  EXPECT_EQ(Eval("round(0.125, 2)"), "double 0.13");
  EXPECT_EQ(Eval("round(0.05, 1)"), "double 0.1");
  EXPECT_EQ(Eval("round(123.456, 1)"), "double 123.5");
  EXPECT_EQ(Eval("round(9.995, 2)"), "double 10");
  EXPECT_EQ(Eval("round(0.000123456, 5)"), "double 0.00012");
  EXPECT_EQ(Eval("round(3.14159, 10)"), "double 3.14159");
  EXPECT_EQ(Eval("round(1234.5678, -2)"), "double 1200");
  EXPECT_EQ(Eval("round(1250, -2)"), "double 1300");
  EXPECT_EQ(Eval("round(49, -2)"), "double 0");
  EXPECT_EQ(Eval("round(1e300, 2)"), "double 1e+300");
  EXPECT_EQ(Eval("round(bid, digits)"), "double 2.5");
  EXPECT_EQ(Eval("round(2.25, digits)"), "double 2.3");
  EXPECT_EQ(Eval("round(d_null, 2)"), "null");
  EXPECT_EQ(Eval("round(2.5, n_null)"), "null");
  EXPECT_EQ(Error("round(name)"),
            "<expr>:1:7: argument 1 of round() must be a number, got string; convert it with "
            "to_int() or to_double()");
  EXPECT_EQ(Error("round(bid, 1.5)"),
            "<expr>:1:12: argument 2 of round() must be int64, got double");
}

TEST_F(ExprTest, FloorCeilAbs) {
  EXPECT_EQ(Eval("floor(2.7)"), "double 2");
  EXPECT_EQ(Eval("floor(-2.5)"), "double -3");
  EXPECT_EQ(Eval("ceil(2.1)"), "double 3");
  EXPECT_EQ(Eval("ceil(-2.1)"), "double -2");
  EXPECT_EQ(Eval("floor(7)"), "int64 7");
  EXPECT_EQ(Eval("ceil(clicks)"), "int64 42");
  EXPECT_EQ(Eval("floor(d_null)"), "null");
  EXPECT_EQ(Eval("abs(-3)"), "int64 3");
  EXPECT_EQ(Eval("abs(3)"), "int64 3");
  EXPECT_EQ(Eval("abs(-2.5)"), "double 2.5");
  EXPECT_EQ(Eval("abs(min_int)"), "null");  // |INT64_MIN| does not fit
  EXPECT_EQ(Eval("abs(n_null)"), "null");
  EXPECT_EQ(Error("abs(flag)"), "<expr>:1:5: argument 1 of abs() must be a number, got bool");
}

// ---- strings ----

TEST_F(ExprTest, StringFunctions) {
  EXPECT_EQ(Eval("lower('AbC-1')"), "string 'abc-1'");
  EXPECT_EQ(Eval("upper(name)"), "string 'ALICE'");
  EXPECT_EQ(Eval("lower('ÉCOLE')"), "string 'École'");  // ASCII letters only
  EXPECT_EQ(Eval("trim('  a b \t')"), "string 'a b'");
  EXPECT_EQ(Eval("trim('   ')"), "string ''");
  EXPECT_EQ(Eval("length(name)"), "int64 5");
  EXPECT_EQ(Eval("length('héllo')"), "int64 5");  // characters, not bytes
  EXPECT_EQ(Eval("length('')"), "int64 0");
  EXPECT_EQ(Eval("lower(s_null)"), "null");
  EXPECT_EQ(Eval("length(s_null)"), "null");
  EXPECT_EQ(Error("length(clicks)"),
            "<expr>:1:8: argument 1 of length() must be string, got int64");
  EXPECT_EQ(Error("upper(1)"), "<expr>:1:7: argument 1 of upper() must be string, got int64");
}

TEST_F(ExprTest, ConcatFunction) {
  EXPECT_EQ(Eval("concat('a', null, 1, 2.5, true)"), "string 'a12.5true'");
  EXPECT_EQ(Eval("concat(name, '@', clicks)"), "string 'alice@42'");
  EXPECT_EQ(Eval("concat(name, s_null, '!')"), "string 'alice!'");  // null counts as ''
  EXPECT_EQ(Eval("concat(s_null)"), "string ''");
  EXPECT_EQ(Eval("concat('day ', ts)"), "string 'day 2024-03-15 13:45:30.250000'");
}

// ---- conversions ----

TEST_F(ExprTest, Uuid5) {
  // Expected values from Python's uuid.uuid5 (RFC 4122 version 5, SHA-1).
  const std::string url = "uuid5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', ";
  EXPECT_EQ(Eval("uuid5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org')"),
            "string '886313e1-3b8a-5372-9b90-0c9aee199e5d'");
  EXPECT_EQ(Eval(url + "name)"), "string '9750dcc2-516e-5ea0-8a26-54fa6ff6986b'");
  EXPECT_EQ(Eval(url + "'')"), "string '1b4db7eb-4057-5ddf-91e0-36dec72071f5'");
  // Names whose padding ends exactly at, or spills past, a 64-byte block (16 + n bytes).
  EXPECT_EQ(Eval(url + "'" + std::string(55, 'x') + "')"),
            "string 'd7c769b2-da3b-59fa-bdd6-2f3e8c5ed303'");
  EXPECT_EQ(Eval(url + "'" + std::string(56, 'x') + "')"),
            "string '3626e090-976f-515f-95a7-d3a479e5f76b'");
  EXPECT_EQ(Eval(url + "'" + std::string(64, 'y') + "')"),
            "string '0ed594eb-df1f-5fa8-abbe-2103349c9c8b'");
  EXPECT_EQ(Eval(url + "'" + std::string(119, 'z') + "')"),
            "string 'f2d4433e-0ecc-5842-9a63-6b3c09a08a4c'");
  EXPECT_EQ(Eval(url + "'\xC3\xA9|\xC3\x9Cn\xC3\xAF" "code')"),
            "string '0affb27d-2396-5009-a5c7-d9f733a68434'");
  // The namespace may be written in upper case or without hyphens.
  EXPECT_EQ(Eval("uuid5('6BA7B8119DAD11D180B400C04FD430C8', name)"),
            "string '9750dcc2-516e-5ea0-8a26-54fa6ff6986b'");
  EXPECT_EQ(Eval(url + "s_null)"), "null");
  EXPECT_EQ(Eval(url + "name || '-' || to_string(clicks))"), Eval(url + "'alice-42')"));
  EXPECT_EQ(Error("uuid5('not-a-uuid', name)"),
            "<expr>:1:7: argument 1 of uuid5() must be a UUID such as "
            "'6ba7b811-9dad-11d1-80b4-00c04fd430c8'");
  EXPECT_EQ(Error("uuid5(name, name)").rfind("<expr>:1:7: argument 1 of uuid5() must be a "
                                             "constant string", 0),
            0u);
  EXPECT_EQ(Error(url + "clicks)").rfind("<expr>:1:", 0), 0u);
}

TEST_F(ExprTest, ToInt) {
  EXPECT_EQ(Eval("to_int('42')"), "int64 42");
  EXPECT_EQ(Eval("to_int('-7')"), "int64 -7");
  EXPECT_EQ(Eval("to_int('+7')"), "int64 7");
  EXPECT_EQ(Eval("to_int('007')"), "int64 7");
  EXPECT_EQ(Eval("to_int('4.2')"), "null");
  EXPECT_EQ(Eval("to_int(' 42')"), "null");
  EXPECT_EQ(Eval("to_int('42 ')"), "null");
  EXPECT_EQ(Eval("to_int('')"), "null");
  EXPECT_EQ(Eval("to_int('-')"), "null");
  EXPECT_EQ(Eval("to_int('+-1')"), "null");
  EXPECT_EQ(Eval("to_int('9223372036854775807')"), "int64 9223372036854775807");
  EXPECT_EQ(Eval("to_int('9223372036854775808')"), "null");
  EXPECT_EQ(Eval("to_int('-9223372036854775808')"), "int64 -9223372036854775808");
  EXPECT_EQ(Eval("to_int('-9223372036854775809')"), "null");
  EXPECT_EQ(Eval("to_int(3.9)"), "int64 3");
  EXPECT_EQ(Eval("to_int(-3.9)"), "int64 -3");
  EXPECT_EQ(Eval("to_int(1e19)"), "null");
  EXPECT_EQ(Eval("to_int(true)"), "int64 1");
  EXPECT_EQ(Eval("to_int(clicks)"), "int64 42");
  EXPECT_EQ(Eval("to_int(s_null)"), "null");
  EXPECT_EQ(Error("to_int(ts)"),
            "<expr>:1:8: argument 1 of to_int() cannot be a timestamp; use epoch_seconds() for "
            "seconds since 1970-01-01");
}

TEST_F(ExprTest, ToDouble) {
  EXPECT_EQ(Eval("to_double('2.5')"), "double 2.5");
  EXPECT_EQ(Eval("to_double('-1e3')"), "double -1000");
  EXPECT_EQ(Eval("to_double('+.5')"), "double 0.5");
  EXPECT_EQ(Eval("to_double('7')"), "double 7");
  EXPECT_EQ(Eval("to_double('abc')"), "null");
  EXPECT_EQ(Eval("to_double('2.5x')"), "null");
  EXPECT_EQ(Eval("to_double('')"), "null");
  EXPECT_EQ(Eval("to_double('nan')"), "null");
  EXPECT_EQ(Eval("to_double('inf')"), "null");
  EXPECT_EQ(Eval("to_double('+-1')"), "null");
  EXPECT_EQ(Eval("to_double(3)"), "double 3");
  EXPECT_EQ(Eval("to_double(clicks) / 4"), "double 10.5");
  EXPECT_EQ(Eval("to_double(false)"), "double 0");
  EXPECT_EQ(Eval("to_double(s_null)"), "null");
  EXPECT_EQ(TypeOf("to_double(clicks)"), "double");
}

TEST_F(ExprTest, ToString) {
  EXPECT_EQ(Eval("to_string(42)"), "string '42'");
  EXPECT_EQ(Eval("to_string(2.5)"), "string '2.5'");
  EXPECT_EQ(Eval("to_string(true)"), "string 'true'");
  EXPECT_EQ(Eval("to_string(name)"), "string 'alice'");
  EXPECT_EQ(Eval("to_string(ts)"), "string '2024-03-15 13:45:30.250000'");
  EXPECT_EQ(Eval("to_string(n_null)"), "null");
  EXPECT_EQ(Eval("to_string(null)"), "null");
}

TEST_F(ExprTest, IsInt) {
  EXPECT_EQ(Eval("is_int('123')"), "bool true");
  EXPECT_EQ(Eval("is_int('-5')"), "bool true");
  EXPECT_EQ(Eval("is_int('12a')"), "bool false");
  EXPECT_EQ(Eval("is_int('1.0')"), "bool false");
  EXPECT_EQ(Eval("is_int('')"), "bool false");
  EXPECT_EQ(Eval("is_int('-')"), "bool false");
  EXPECT_EQ(Eval("is_int('99999999999999999999')"), "bool false");  // beyond int64
  EXPECT_EQ(Eval("is_int(name)"), "bool false");
  EXPECT_EQ(Eval("is_int(s_null)"), "null");
  EXPECT_EQ(Error("is_int(clicks)"),
            "<expr>:1:8: argument 1 of is_int() must be string, got int64");
}

// ---- pipeline-shaped expressions ----

TEST_F(ExprTest, RecruitmentStyleExpressions) {
  std::vector<Value> row = row_;
  row[2] = Str("click");
  auto where = CompilePredicate("name = 'click' and bid is not null", schema_);
  ASSERT_TRUE(where.ok()) << where.status().message();
  EXPECT_TRUE(IsTrue((*where)->Eval(row)));
  row[1] = Value();
  EXPECT_FALSE(IsTrue((*where)->Eval(row)));

  auto key = Compile("coalesce(n_null, 0)", schema_);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(Show((*key)->Eval(row)), "int64 0");

  auto event_time = Compile("coalesce(timeuuid_time(uuid), ts)", schema_);
  ASSERT_TRUE(event_time.ok());
  EXPECT_EQ(Show((*event_time)->Eval(row)), "timestamp 2024-01-01 00:00:00");
  row[8] = Str("corrupt");
  EXPECT_EQ(Show((*event_time)->Eval(row)), "timestamp 2024-03-15 13:45:30.250000");
}

}  // namespace
}  // namespace sluice::expr::testing
