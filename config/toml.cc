/* TOML reader: parses with toml++ and walks the document, handing each section and key to the
 * loader (config.c) with its line. The only C++ in srv; every exception stops here, because an
 * exception unwinding through C frames is undefined behaviour. */
#include "config/config_internal.h"

#include <cerrno>
#include <new>
#include <string>
#include <toml++/toml.h>

namespace
{

int line_of(const toml::source_region &src)
{
    return src.begin.line > 0 ? static_cast<int>(src.begin.line) : 0;
}

srv__val_t value_of(const toml::node &node)
{
    srv__val_t v{};
    switch (node.type()) {
    case toml::node_type::string: {
        const std::string &s = node.as_string()->get();
        v.kind = SRV__VAL_STRING;
        v.s = s.data();
        v.len = s.size();
        break;
    }
    case toml::node_type::integer:
        v.kind = SRV__VAL_INT;
        v.i = node.as_integer()->get();
        break;
    case toml::node_type::floating_point:
        v.kind = SRV__VAL_FLOAT;
        v.f = node.as_floating_point()->get();
        break;
    case toml::node_type::boolean:
        v.kind = SRV__VAL_BOOL;
        v.b = node.as_boolean()->get();
        break;
    case toml::node_type::array:
        v.kind = SRV__VAL_ARRAY;
        break;
    case toml::node_type::table:
        v.kind = SRV__VAL_TABLE;
        break;
    default:
        v.kind = SRV__VAL_DATETIME;
        break;
    }
    return v;
}

/* Line of a key, falling back to its value's when toml++ has none (implicit tables). */
int key_line(const toml::key &k, const toml::node &v)
{
    int line = line_of(k.source());
    return line > 0 ? line : line_of(v.source());
}

void walk_columns(srv__loader_t *ld, int table, const toml::node &node, int line)
{
    const toml::array *cols = node.as_array();
    if (cols == nullptr) {
        srv__config_error(ld, line, "columns",
                          "must be an array of tables like {name = \"x\", "
                          "type = \"int\"}");
        return;
    }
    for (const toml::node &elem : *cols) {
        const toml::table *col = elem.as_table();
        int col_line = line_of(elem.source());
        if (col == nullptr) {
            srv__config_error(ld, col_line ? col_line : line, "columns",
                              "each column must be a table like {name = \"x\", type = \"int\"}");
            continue;
        }
        int c = srv__config_column_open(ld, table, col_line ? col_line : line);
        if (c < 0)
            continue;
        for (auto &&[k, v] : *col) {
            std::string key(k.str());
            srv__val_t val = value_of(v);
            srv__config_column_set(ld, table, c, key.c_str(), nullptr, &val, key_line(k, v));
        }
    }
}

void walk_entry(srv__loader_t *ld, int sect, const toml::table &tbl, int line)
{
    int entry = srv__config_open(ld, sect, nullptr, line);
    if (entry < 0)
        return;
    for (auto &&[k, v] : tbl) {
        std::string key(k.str());
        int kline = key_line(k, v);
        if (sect == SRV__SECT_TABLE && key == "columns") {
            walk_columns(ld, entry, v, kline);
            continue;
        }
        srv__val_t val = value_of(v);
        srv__config_set(ld, sect, entry, key.c_str(), &val, kline);
    }
}

void walk(srv__loader_t *ld, const toml::table &root)
{
    for (auto &&[k, v] : root) {
        std::string name(k.str());
        int line = key_line(k, v);
        int sect = srv__config_sect_lookup(name.c_str());
        if (sect < 0) {
            if (v.is_table() || v.is_array_of_tables())
                srv__config_error(ld, line, name.c_str(), "unknown section");
            else
                srv__config_error(ld, line, name.c_str(),
                                  "unknown section (server keys go under [server])");
            continue;
        }
        if (sect == SRV__SECT_SERVER) {
            if (!v.is_table()) {
                srv__config_error(ld, line, name.c_str(), "must be a table ([server])");
                continue;
            }
            int sline = line_of(v.source());
            walk_entry(ld, sect, *v.as_table(), sline ? sline : line);
            continue;
        }
        if (!v.is_array_of_tables()) {
            srv__config_error(ld, line, name.c_str(), "must be an array of tables ([[%s]])",
                              name.c_str());
            continue;
        }
        for (const toml::node &elem : *v.as_array()) {
            int eline = line_of(elem.source());
            walk_entry(ld, sect, *elem.as_table(), eline ? eline : line);
        }
    }
}

} // namespace

extern "C" int srv__toml_parse(srv__loader_t *ld, const char *text, size_t len, const char *path)
{
    try {
        toml::table root = toml::parse(std::string_view(text, len), std::string_view(path));
        walk(ld, root);
        return 0;
    } catch (const toml::parse_error &e) {
        std::string desc(e.description());
        srv__config_error(ld, line_of(e.source()), "", "%s", desc.c_str());
        return -EINVAL;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (const std::exception &e) {
        srv__config_error(ld, 0, "", "TOML reader failed: %s", e.what());
        return -EINVAL;
    } catch (...) {
        srv__config_error(ld, 0, "", "TOML reader failed");
        return -EINVAL;
    }
}
