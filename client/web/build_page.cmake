# Builds the self-contained verification page (docs/VERIFY.md) at build
# time, with no network: cmake -P client/web/build_page.cmake with
#   -DWEB_DIR=client/web  -DOUT_HTML=.../verify.html  -DOUT_CC=.../web_page.cc
#
# 1. Each vendored ES module (client/web/vendor/<pkg>-<version>/*.js, copied
#    unmodified from npm) becomes a function scope that returns its exports:
#      import { a, b } from "./x.js";   ->  const { a, b } = __vendor_<pkg>_x;
#      import * as m from "./x.js";     ->  const m = __vendor_<pkg>_x;
#      export function f / const c ...  ->  function f / const c ... (returned)
#      export { a, b };                 ->  (returned)
#    Only this subset of module syntax is handled; anything else (a renamed
#    import or export, a default export, a bare-specifier import) fails the
#    build, so a library update cannot be mistranslated silently.
# 2. The page's own code follows the modules in the same one script, in the
#    order of PAGE_SCRIPTS below: verify_encoding.js (bytes, strict JSON),
#    verify_formats.js (the checks of certificates, receipts, notes and
#    tlog-proofs) and verify.js (the page: DOM, inputs, verdict). Each is a
#    strict-mode function scope; the first two return their names as
#    `verifyEncoding` and `verifyFormats` for those after them.
# 3. That script and verify.css are inlined into verify.html, and the
#    Content-Security-Policy gets the SHA-256 of the inline script and style,
#    so the page runs no other script or style and fetches nothing.
# 4. OUT_CC defines the page bytes for `shredctl web-verifier`
#    (client/web_verifier.h).
cmake_minimum_required(VERSION 3.20)

foreach(var WEB_DIR OUT_HTML OUT_CC)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "build_page.cmake: -D${var}=... is required")
  endif()
endforeach()

# Modules in dependency order: "<vendor dir>|<file>|<prefix>".
set(MODULES
  "noble-hashes-2.4.0|utils.js|noble_hashes"
  "noble-hashes-2.4.0|_u64.js|noble_hashes"
  "noble-hashes-2.4.0|_md.js|noble_hashes"
  "noble-hashes-2.4.0|sha2.js|noble_hashes"
  "noble-ed25519-3.2.0|index.js|noble_ed25519")

# The page's own code (client/web), in this order after the modules; each
# file uses names of those before it. client/CMakeLists.txt lists the same
# files as the page's inputs.
set(PAGE_SCRIPTS verify_encoding.js verify_formats.js verify.js)

function(module_var prefix file out)
  string(REGEX REPLACE "\\.js$" "" base "${file}")
  string(MAKE_C_IDENTIFIER "${base}" base)
  set(${out} "__vendor_${prefix}_${base}" PARENT_SCOPE)
endfunction()

# Exported names of `code` (a module with a leading newline) -> out.
function(module_exports code where out)
  set(names "")
  string(REGEX MATCHALL "\nexport (async function\\*?|function\\*?|const|let|var|class) +[A-Za-z0-9_$]+" decls "${code}")
  foreach(d IN LISTS decls)
    string(REGEX REPLACE ".* ([A-Za-z0-9_$]+)$" "\\1" n "${d}")
    list(APPEND names "${n}")
  endforeach()
  string(REGEX MATCHALL "\nexport {[^}]*}" lists "${code}")
  foreach(l IN LISTS lists)
    string(REGEX REPLACE "^\nexport {([^}]*)}$" "\\1" inner "${l}")
    string(REPLACE "\n" " " inner "${inner}")
    string(REPLACE "," ";" parts "${inner}")
    foreach(p IN LISTS parts)
      string(STRIP "${p}" p)
      if(p STREQUAL "")
        continue()
      endif()
      if(NOT p MATCHES "^[A-Za-z0-9_$]+$")
        message(FATAL_ERROR "build_page.cmake: ${where}: unsupported export \"${p}\"")
      endif()
      list(APPEND names "${p}")
    endforeach()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

set(script "// Vendored libraries (client/web/vendor, see the README in each folder).\n")
foreach(m IN LISTS MODULES)
  string(REPLACE "|" ";" parts "${m}")
  list(GET parts 0 dir)
  list(GET parts 1 file)
  list(GET parts 2 prefix)
  set(path "${WEB_DIR}/vendor/${dir}/${file}")
  file(READ "${path}" code)
  set(code "\n${code}")
  if(code MATCHES "\nexport default" OR code MATCHES "import\\.meta" OR code MATCHES "\nexport \\*")
    message(FATAL_ERROR "build_page.cmake: ${path}: unsupported module syntax")
  endif()
  module_exports("${code}" "${path}" exports)
  # Imports of sibling modules.
  # Matched without the final ';': CMake lists are ';'-separated.
  string(REGEX MATCHALL "\nimport [^\n;]*" imports "${code}")
  foreach(imp IN LISTS imports)
    if(imp MATCHES "^\nimport \\* as ([A-Za-z0-9_$]+) from \"\\./([A-Za-z0-9_]+\\.js)\"$")
      module_var("${prefix}" "${CMAKE_MATCH_2}" var)
      string(REPLACE "${imp}" "\nconst ${CMAKE_MATCH_1} = ${var};" code "${code}")
    elseif(imp MATCHES "^\nimport {([^}]*)} from \"\\./([A-Za-z0-9_]+\\.js)\"$")
      set(what "${CMAKE_MATCH_1}")
      module_var("${prefix}" "${CMAKE_MATCH_2}" var)
      if(what MATCHES " as ")
        message(FATAL_ERROR "build_page.cmake: ${path}: renamed import \"${imp}\"")
      endif()
      string(REPLACE "${imp}" "\nconst {${what}} = ${var};" code "${code}")
    elseif(imp MATCHES "\"")
      # A double-quoted specifier is code; single-quoted ones are in the
      # libraries' doc comments (examples).
      message(FATAL_ERROR "build_page.cmake: ${path}: unsupported import \"${imp}\"")
    endif()
  endforeach()
  string(REGEX REPLACE "\nexport {[^}]*};?" "\n" code "${code}")
  string(REGEX REPLACE "\nexport (async function|function|const|let|var|class) " "\n\\1 " code "${code}")
  if(code MATCHES "\nexport ")
    message(FATAL_ERROR "build_page.cmake: ${path}: an export was left untranslated")
  endif()
  list(JOIN exports ", " export_list)
  module_var("${prefix}" "${file}" var)
  string(APPEND script "// ---- ${dir}/${file}\nconst ${var} = (() => {\n'use strict';${code}\nreturn { ${export_list} };\n})();\n")
endforeach()

file(READ "${WEB_DIR}/verify.css" style)
file(READ "${WEB_DIR}/verify.html" html)
string(APPEND script "const noble = { ed25519: __vendor_noble_ed25519_index, sha2: __vendor_noble_hashes_sha2 };\n")
foreach(page_file IN LISTS PAGE_SCRIPTS)
  file(READ "${WEB_DIR}/${page_file}" page_js)
  if(NOT page_js MATCHES "\n$")
    message(FATAL_ERROR "build_page.cmake: ${WEB_DIR}/${page_file} does not end with a newline")
  endif()
  string(APPEND script "// ---- ${page_file}\n${page_js}")
endforeach()

# Nothing inlined may end its element early.
string(TOLOWER "${script}" lower_script)
string(TOLOWER "${style}" lower_style)
foreach(bad "</script" "<!--")
  string(FIND "${lower_script}" "${bad}" pos)
  if(NOT pos EQUAL -1)
    message(FATAL_ERROR "build_page.cmake: the inline script contains \"${bad}\"")
  endif()
endforeach()
string(FIND "${lower_style}" "</style" pos)
if(NOT pos EQUAL -1)
  message(FATAL_ERROR "build_page.cmake: the inline style contains \"</style\"")
endif()

# Standard base64 of the 32 bytes given as 64 hex characters.
function(hex_to_base64 hex out)
  set(alphabet "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  set(result "")
  string(LENGTH "${hex}" n)
  set(i 0)
  while(i LESS n)
    math(EXPR left "${n} - ${i}")
    if(left GREATER_EQUAL 6)
      string(SUBSTRING "${hex}" ${i} 6 group)
      set(bytes 3)
    else()
      string(SUBSTRING "${hex}" ${i} ${left} group)
      math(EXPR bytes "${left} / 2")
      while(left LESS 6)
        string(APPEND group "0")
        math(EXPR left "${left} + 1")
      endwhile()
    endif()
    math(EXPR v "0x${group}")
    foreach(shift 18 12 6 0)
      math(EXPR k "(${v} >> ${shift}) & 63")
      string(SUBSTRING "${alphabet}" ${k} 1 c)
      string(APPEND result "${c}")
    endforeach()
    if(bytes EQUAL 1)
      string(REGEX REPLACE "..$" "==" result "${result}")
    elseif(bytes EQUAL 2)
      string(REGEX REPLACE ".$" "=" result "${result}")
    endif()
    math(EXPR i "${i} + 6")
  endwhile()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

string(SHA256 script_sha "${script}")
string(SHA256 style_sha "${style}")
hex_to_base64("${script_sha}" script_b64)
hex_to_base64("${style_sha}" style_b64)
set(csp "default-src 'none'; script-src 'sha256-${script_b64}'; style-src 'sha256-${style_b64}'; img-src 'none'; connect-src 'none'; font-src 'none'; media-src 'none'; object-src 'none'; frame-src 'none'; worker-src 'none'; manifest-src 'none'; form-action 'none'; base-uri 'none'")

foreach(marker "<!--@CSP@-->" "<!--@STYLE@-->" "<!--@SCRIPT@-->")
  string(FIND "${html}" "${marker}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "build_page.cmake: verify.html has no ${marker}")
  endif()
endforeach()
# string(REPLACE), not configure_file: the script's ${...} and @...@ stay as
# they are.
string(REPLACE "<!--@CSP@-->" "${csp}" html "${html}")
string(REPLACE "<!--@STYLE@-->" "<style>${style}</style>" html "${html}")
string(REPLACE "<!--@SCRIPT@-->" "<script>${script}</script>" html "${html}")

file(WRITE "${OUT_HTML}" "${html}")

file(READ "${OUT_HTML}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){32})" "\\1\n" bytes "${bytes}")
string(CONCAT cc "// Generated by client/web/build_page.cmake from client/web/: do not edit.\n"
       "#include \"client/web_verifier.h\"\n\n"
       "namespace shredd::cli {\nnamespace {\nconstexpr unsigned char kPage[] = {\n${bytes}\n};\n}  // namespace\n\n"
       "std::string_view WebVerifierPage() {\n"
       "  return std::string_view(reinterpret_cast<const char*>(kPage), ${size});\n}\n\n"
       "}  // namespace shredd::cli\n")
file(WRITE "${OUT_CC}" "${cc}")
