# Installs the service files (run by `cmake --install` and by cpack through
# install(SCRIPT), so paths follow the prefix in force at install time):
#   PREFIX/lib/systemd/system/shredd.service   the unit of systemd/, run as the
#                                              sysusers.d user, ExecStart at PREFIX/bin
#   PREFIX/lib/sysusers.d/shredd.conf, PREFIX/lib/tmpfiles.d/shredd.conf
#   SYSCONF/shredd/shredd.toml                 systemd/shredd.toml (SYSCONF: /etc
#                                              for the /usr prefix, else PREFIX/etc)
# Expects SHREDD_SOURCE_DIR, SHREDD_PACKAGING_DIR and SHREDD_STAGING_DIR (set by the
# install(CODE) before it).
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(sysconf "/etc")
else()
  set(sysconf "${prefix}/etc")
endif()

file(READ "${SHREDD_SOURCE_DIR}/systemd/shredd.service" unit)
# Each edit must hit, or the systemd/ unit changed under us: stop.
function(edit from to)
  string(FIND "${unit}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "systemd/shredd.service: \"${from}\" not found; update packaging/install_service.cmake")
  endif()
  string(REPLACE "${from}" "${to}" edited "${unit}")
  set(unit "${edited}" PARENT_SCOPE)
endfunction()
edit("ExecStart=/usr/local/bin/shredd --config /etc/shredd/shredd.toml"
     "ExecStart=${prefix}/bin/shredd --config ${sysconf}/shredd/shredd.toml")
edit("Documentation=file:///usr/local/share/doc/shredd/README.md" "Documentation=man:shredd(8) man:shredd.toml(5)")
# A static user from sysusers.d instead of a dynamic one: the files under
# /var/lib/shredd keep one owner across reinstalls, and group shredd is
# how local operators reach the socket. Everything DynamicUser= implied
# (ProtectSystem=strict, PrivateTmp, RemoveIPC, NoNewPrivileges,
# RestrictSUIDSGID) is set explicitly in the unit.
edit("DynamicUser=yes" "User=shredd\nGroup=shredd")
string(REGEX REPLACE "# Install: [^\n]*\n(#[^\n]*\n)*# Local clients" "# Installed by the shredd package (docs/SERVICE.md \"Install the package\").\n# Local clients" unit "${unit}")

set(staging "${SHREDD_STAGING_DIR}")  # in the build tree, whatever the current directory
file(WRITE "${staging}/shredd.service" "${unit}")
file(INSTALL "${staging}/shredd.service" DESTINATION "${prefix}/lib/systemd/system" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${SHREDD_PACKAGING_DIR}/shredd.sysusers" DESTINATION "${prefix}/lib/sysusers.d" RENAME shredd.conf
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${SHREDD_PACKAGING_DIR}/shredd.tmpfiles" DESTINATION "${prefix}/lib/tmpfiles.d" RENAME shredd.conf
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${SHREDD_SOURCE_DIR}/systemd/shredd.toml" DESTINATION "${sysconf}/shredd"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
