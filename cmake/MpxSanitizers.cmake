# MPX_SANITIZE=address;undefined or thread: applied to every target in the build.
set(MPX_SANITIZE "" CACHE STRING "Sanitizers: address;undefined, or thread")
if(MPX_SANITIZE)
  list(JOIN MPX_SANITIZE "," _mpx_san)
  add_compile_options(-fsanitize=${_mpx_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_mpx_san})
endif()
