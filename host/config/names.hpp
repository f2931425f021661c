// Name tables: each enumerated choice (optimizer, schedule, data set, --on-nan, --kernels,
// --precision, --device) is spelled in one constexpr table whose entries have at least `name`
// and `help`, and `value` where the choice is an enum. Parsing, printing, the --help text and the checks all read that
// table, so an entry cannot be added in one place and forgotten in another.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "host/base/error.hpp"

namespace mlp {

// The entry of a table whose choices carry nothing but a name and a help text.
template <class E>
struct NamedChoice {
    const char* name;
    E value;
    const char* help;
};

// "a, b or c".
template <class Entry, size_t N>
std::string name_list(const Entry (&table)[N]) {
    std::string s;
    for (size_t i = 0; i < N; ++i) {
        if (i > 0) s += i + 1 == N ? " or " : ", ";
        s += table[i].name;
    }
    return s;
}

// "a (help), b or c (help)": entries with an empty help show the name alone.
template <class Entry, size_t N>
std::string name_list_with_help(const Entry (&table)[N]) {
    std::string s;
    for (size_t i = 0; i < N; ++i) {
        if (i > 0) s += i + 1 == N ? " or " : ", ";
        s += table[i].name;
        if (table[i].help[0] != '\0') s += std::string(" (") + table[i].help + ")";
    }
    return s;
}

template <class Entry, size_t N>
std::vector<std::string> names_of(const Entry (&table)[N]) {
    std::vector<std::string> names;
    for (const Entry& e : table) names.emplace_back(e.name);
    return names;
}

// The entry named `name`, or nullptr.
template <class Entry, size_t N>
const Entry* find_name(const Entry (&table)[N], const std::string& name) {
    for (const Entry& e : table) {
        if (name == e.name) return &e;
    }
    return nullptr;
}

// The entry named `name`; anything else is a usage error of `flag` that lists the names.
template <class Entry, size_t N>
const Entry& parse_name(const Entry (&table)[N], const std::string& name, const char* flag,
                        const char* what) {
    if (const Entry* e = find_name(table, name)) return *e;
    throw UsageError(
        flag, "unknown " + std::string(what) + " '" + name + "' (use " + name_list(table) + ")");
}

// The entry of enumerator `value`. Every enumerator has one (the tests walk the tables), so a
// miss is a bug of the table, not of the input.
template <class Entry, size_t N, class E>
const Entry& entry_of(const Entry (&table)[N], E value) {
    for (const Entry& e : table) {
        if (e.value == value) return e;
    }
    throw Error("enumerator " + std::to_string(int(value)) + " has no name table entry");
}

}  // namespace mlp
